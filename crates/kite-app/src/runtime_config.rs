//! The runtime configuration file (`kite up --runtime-config`): which backend serves each
//! store label and where variable values come from. Kept apart from the manifest so one app
//! runs unchanged on different machines.

use crate::client_tls::{ClientTls, RawClientTls};
use crate::units::parse_duration;
use crate::BlockedNetwork;
use crate::{Location, ManifestError, VariableProvider, ENV_PREFIX};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// How long a Redis connect, command or reply may take unless `timeout` says otherwise.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, StoreBackend>,
    pub sqlite_databases: BTreeMap<String, DatabaseBackend>,
    /// The variable providers in priority order; empty means the default chain.
    pub variable_providers: Vec<VariableProvider>,
    /// `[outbound_networking] block_networks`: no outbound connection reaches these.
    pub blocked_networks: Vec<BlockedNetwork>,
    /// `state_dir` (Spin's setting): where the app's stores live unless `--state-dir` says.
    pub state_dir: Option<PathBuf>,
    /// `[[client_tls]]`: trusted roots and client certificates for chosen components and hosts.
    pub client_tls: Vec<ClientTls>,
    /// The largest each SQLite store or database file may grow, in bytes (set by a host of
    /// many apps from an app's quota; not read from the file).
    pub max_store_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// An SQLite file (absolute, resolved from the config file's directory).
    Sqlite { path: PathBuf },
    /// An SQLite file in Spin's layout (`type = "spin"`): stores side by side in one table,
    /// this label's rows only.
    SpinSqlite { path: PathBuf },
    /// A Redis server; keys are kept under `prefix`, or `kite:<app>:<label>:` without one.
    /// No connect, command or reply may take longer than `timeout`.
    Redis {
        url: String,
        prefix: Option<String>,
        timeout: Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite { path: PathBuf },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, Spanned<RawTable>>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, Spanned<RawTable>>,
    #[serde(default)]
    variable_provider: Vec<Spanned<RawTable>>,
    #[serde(default)]
    outbound_networking: RawOutboundNetworking,
    /// Spin's provider list (`config_provider` is its older name).
    #[serde(default, alias = "config_provider")]
    variables_provider: Vec<Spanned<toml::Table>>,
    state_dir: Option<String>,
    /// Spin settings for services and features Kite does not have.
    log_dir: Option<Spanned<toml::Value>>,
    max_instance_memory: Option<Spanned<toml::Value>>,
    #[serde(default)]
    client_tls: Vec<RawClientTls>,
    llm_compute: Option<Spanned<toml::Value>>,
    outbound_http: Option<Spanned<toml::Value>>,
    outbound_redis: Option<Spanned<toml::Value>>,
    outbound_pg: Option<Spanned<toml::Value>>,
    outbound_mysql: Option<Spanned<toml::Value>>,
    outbound_mqtt: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutboundNetworking {
    #[serde(default)]
    block_networks: Vec<Spanned<String>>,
}

/// Store and database types Spin has that need a cloud service.
const CLOUD_KINDS: &[&str] = &["azure_cosmos", "aws_dynamo", "libsql"];

/// A `type = "..."` table with every setting any type takes; which ones its type takes is
/// checked afterwards, so that every error keeps the line of the setting it is about.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

/// One `type` a table may have: the settings it takes, and which of them it needs.
struct Kind {
    name: &'static str,
    takes: &'static [&'static str],
    needs: &'static [&'static str],
}

const STORE_KINDS: &[Kind] = &[
    Kind {
        name: "sqlite",
        takes: &["path"],
        needs: &["path"],
    },
    Kind {
        name: "redis",
        takes: &["url", "prefix", "timeout"],
        needs: &["url"],
    },
    Kind {
        name: "spin",
        takes: &["path"],
        needs: &["path"],
    },
];
const DATABASE_KINDS: &[Kind] = &[
    Kind {
        name: "sqlite",
        takes: &["path"],
        needs: &["path"],
    },
    Kind {
        name: "spin",
        takes: &["path"],
        needs: &["path"],
    },
];
const PROVIDER_KINDS: &[Kind] = &[
    Kind {
        name: "env",
        takes: &["prefix"],
        needs: &[],
    },
    Kind {
        name: "dotenv",
        takes: &["path", "prefix"],
        needs: &["path"],
    },
    Kind {
        name: "directory",
        takes: &["path"],
        needs: &["path"],
    },
];

/// Reads one table of the file, making errors that name its line and dotted key.
struct TableReader<'a> {
    file: &'a Path,
    text: &'a str,
    key: String,
    table: Spanned<RawTable>,
}

impl TableReader<'_> {
    fn error_at(
        &self,
        span: std::ops::Range<usize>,
        key: String,
        message: String,
    ) -> ManifestError {
        let location = Location::from_offset(self.text, span.start);
        ManifestError::new(self.file, Some(location), key, message)
    }

    fn kind(&self) -> &str {
        self.table.get_ref().kind.get_ref()
    }

    /// Checks the table's type is one of `kinds`, and that it sets only the settings its
    /// type takes and every one it needs.
    fn check(&self, what: &str, kinds: &[Kind]) -> Result<(), ManifestError> {
        let raw = self.table.get_ref();
        if CLOUD_KINDS.contains(&self.kind()) {
            return Err(self.error_at(
                raw.kind.span(),
                format!("{}.type", self.key),
                format!(
                    "type \"{}\" needs a cloud service Kite cannot reach; use \"sqlite\" (or \"redis\" for key-value stores)",
                    self.kind()
                ),
            ));
        }
        let Some(kind) = kinds.iter().find(|kind| kind.name == self.kind()) else {
            let names: Vec<String> = kinds.iter().map(|k| format!("\"{}\"", k.name)).collect();
            return Err(self.error_at(
                raw.kind.span(),
                format!("{}.type", self.key),
                format!(
                    "unknown {what} type \"{}\": expected {}",
                    self.kind(),
                    names.join(" or ")
                ),
            ));
        };
        let settings = [
            ("path", &raw.path),
            ("url", &raw.url),
            ("prefix", &raw.prefix),
            ("timeout", &raw.timeout),
        ];
        for (name, value) in settings {
            match value {
                Some(value) if !kind.takes.contains(&name) => {
                    return Err(self.error_at(
                        value.span(),
                        format!("{}.{name}", self.key),
                        format!(
                            "a {what} of type \"{}\" has no setting `{name}` (it takes: {})",
                            kind.name,
                            kind.takes.join(", ")
                        ),
                    ))
                }
                None if kind.needs.contains(&name) => {
                    let hint = if kind.name == "spin" {
                        " (Spin keeps a store without one in memory; Kite keeps every store in a file)"
                    } else {
                        ""
                    };
                    return Err(self.error_at(
                        self.table.span(),
                        self.key.clone(),
                        format!("a {what} of type \"{}\" needs `{name}`{hint}", kind.name),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn string(value: &Option<Spanned<String>>) -> Option<String> {
        value.as_ref().map(|v| v.get_ref().clone())
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join(Self::string(&self.table.get_ref().path).unwrap_or_default())
    }

    fn store(&self, dir: &Path) -> Result<StoreBackend, ManifestError> {
        self.check("key-value store", STORE_KINDS)?;
        let raw = self.table.get_ref();
        match self.kind() {
            "sqlite" => {
                return Ok(StoreBackend::Sqlite {
                    path: self.path(dir),
                })
            }
            "spin" => {
                return Ok(StoreBackend::SpinSqlite {
                    path: self.path(dir),
                })
            }
            _ => {}
        }
        let timeout = match &raw.timeout {
            None => DEFAULT_REDIS_TIMEOUT,
            Some(text) => parse_duration(text.get_ref()).map_err(|message| {
                self.error_at(text.span(), format!("{}.timeout", self.key), message)
            })?,
        };
        Ok(StoreBackend::Redis {
            url: Self::string(&raw.url).unwrap_or_default(),
            prefix: Self::string(&raw.prefix),
            timeout,
        })
    }

    fn database(&self, dir: &Path) -> Result<DatabaseBackend, ManifestError> {
        self.check("SQLite database", DATABASE_KINDS)?;
        Ok(DatabaseBackend::Sqlite {
            path: self.path(dir),
        })
    }

    fn variable_provider(&self, dir: &Path) -> Result<VariableProvider, ManifestError> {
        self.check("variable provider", PROVIDER_KINDS)?;
        let raw = self.table.get_ref();
        let prefix = Self::string(&raw.prefix).unwrap_or_else(|| ENV_PREFIX.to_string());
        Ok(match self.kind() {
            "env" => VariableProvider::Environment { prefix },
            "dotenv" => VariableProvider::Dotenv {
                path: self.path(dir),
                prefix,
            },
            _ => VariableProvider::Directory {
                path: self.path(dir),
            },
        })
    }
}

/// One of Spin's `[[variables_provider]]` tables: `env` (with an optional prefix and dotenv
/// file) and `static` values; Vault and Azure Key Vault are refused by name.
fn spin_provider(
    file: &Path,
    text: &str,
    dir: &Path,
    key: &str,
    table: &Spanned<toml::Table>,
) -> Result<Vec<VariableProvider>, ManifestError> {
    let fail = |key: String, message: String| {
        let location = Location::from_offset(text, table.span().start);
        ManifestError::new(file, Some(location), key, message)
    };
    let raw = table.get_ref();
    let string = |name: &str| raw.get(name).and_then(toml::Value::as_str);
    let takes = |allowed: &[&str]| match raw.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(other) => Err(fail(
            format!("{key}.{other}"),
            format!(
                "unknown setting `{other}` (it takes: {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    };
    match string("type") {
        Some("env") => {
            takes(&["type", "prefix", "dotenv_path"])?;
            let prefix = format!("{}_", string("prefix").unwrap_or("SPIN_VARIABLE"));
            let mut providers = vec![VariableProvider::Environment {
                prefix: prefix.clone(),
            }];
            if let Some(dotenv) = string("dotenv_path") {
                providers.push(VariableProvider::Dotenv {
                    path: dir.join(dotenv),
                    prefix,
                });
            }
            Ok(providers)
        }
        Some("static") => {
            takes(&["type", "values"])?;
            let values = raw
                .get("values")
                .and_then(toml::Value::as_table)
                .ok_or_else(|| {
                    fail(
                        format!("{key}.values"),
                        "a static provider needs `values = { name = \"value\" }`".into(),
                    )
                })?;
            let mut pairs = Vec::with_capacity(values.len());
            for (name, value) in values {
                let value = value.as_str().ok_or_else(|| {
                    fail(format!("{key}.values.{name}"), "values must be strings".into())
                })?;
                pairs.push((name.clone(), value.to_string()));
            }
            Ok(vec![VariableProvider::Static { values: pairs }])
        }
        Some(kind @ ("vault" | "azure_key_vault")) => Err(fail(
            format!("{key}.type"),
            format!("the {kind} provider needs a service Kite cannot reach; give Kite the values with an env, static, dotenv or directory provider"),
        )),
        Some(other) => Err(fail(
            format!("{key}.type"),
            format!("unknown variables provider type \"{other}\": expected \"env\" or \"static\""),
        )),
        None => Err(fail(format!("{key}.type"), "a provider needs a `type`".into())),
    }
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ManifestError::new(
                path,
                None,
                "",
                format!("cannot read runtime configuration: {e}"),
            )
        })?;
        let raw: RawRuntimeConfig =
            serde_path_to_error::deserialize(toml::Deserializer::new(&text)).map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner();
                let location = inner.span().map(|s| Location::from_offset(&text, s.start));
                let key = if key == "." { String::new() } else { key };
                ManifestError::new(path, location, key, inner.message().trim().to_string())
            })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let reader = |key: String, table: Spanned<RawTable>| TableReader {
            file: path,
            text: &text,
            key,
            table,
        };
        let mut config = RuntimeConfig::default();
        for (label, table) in raw.key_value_store {
            let backend = reader(format!("key_value_store.{label}"), table).store(dir)?;
            config.key_value_stores.insert(label, backend);
        }
        for (label, table) in raw.sqlite_database {
            let backend = reader(format!("sqlite_database.{label}"), table).database(dir)?;
            config.sqlite_databases.insert(label, backend);
        }
        for (index, table) in raw.variable_provider.into_iter().enumerate() {
            let provider =
                reader(format!("variable_provider[{index}]"), table).variable_provider(dir)?;
            config.variable_providers.push(provider);
        }
        for (index, table) in raw.variables_provider.iter().enumerate() {
            let key = format!("variables_provider[{index}]");
            config
                .variable_providers
                .extend(spin_provider(path, &text, dir, &key, table)?);
        }
        for (name, value) in [
            ("log_dir", &raw.log_dir),
            ("max_instance_memory", &raw.max_instance_memory),
            ("llm_compute", &raw.llm_compute),
            ("outbound_http", &raw.outbound_http),
            ("outbound_redis", &raw.outbound_redis),
            ("outbound_pg", &raw.outbound_pg),
            ("outbound_mysql", &raw.outbound_mysql),
            ("outbound_mqtt", &raw.outbound_mqtt),
        ] {
            if let Some(value) = value {
                let location = Location::from_offset(&text, value.span().start);
                return Err(ManifestError::new(
                    path,
                    Some(location),
                    name,
                    format!("Kite does not support Spin's `{name}` setting; remove it (docs/spin.md lists what Kite reads)"),
                ));
            }
        }
        for (index, entry) in raw.client_tls.into_iter().enumerate() {
            config.client_tls.push(entry.read(index, path, &text, dir)?);
        }
        config.state_dir = raw.state_dir.filter(|d| !d.is_empty()).map(|d| dir.join(d));
        for (index, rule) in raw.outbound_networking.block_networks.iter().enumerate() {
            let network = BlockedNetwork::parse(rule.get_ref()).map_err(|message| {
                let location = Location::from_offset(&text, rule.span().start);
                let key = format!("outbound_networking.block_networks[{index}]");
                ManifestError::new(path, Some(location), key, message)
            })?;
            config.blocked_networks.push(network);
        }
        Ok(config)
    }

    pub fn key_value_labels(&self) -> Vec<String> {
        self.key_value_stores.keys().cloned().collect()
    }

    pub fn sqlite_labels(&self) -> Vec<String> {
        self.sqlite_databases.keys().cloned().collect()
    }

    /// The files this configuration names (store files, dotenv files, secret
    /// directories): none of them may be granted to a guest.
    pub fn protected_paths(&self) -> Vec<crate::ProtectedPath> {
        use crate::ProtectedPath;
        let stores = self
            .key_value_stores
            .iter()
            .filter_map(|(label, backend)| match backend {
                StoreBackend::Sqlite { path } | StoreBackend::SpinSqlite { path } => Some(
                    ProtectedPath::new(format!("key-value store `{label}`"), path),
                ),
                StoreBackend::Redis { .. } => None,
            });
        let databases = self
            .sqlite_databases
            .iter()
            .map(|(label, backend)| match backend {
                DatabaseBackend::Sqlite { path } => {
                    ProtectedPath::new(format!("SQLite database `{label}`"), path)
                }
            });
        let providers = self
            .variable_providers
            .iter()
            .filter_map(|provider| match provider {
                VariableProvider::Dotenv { path, .. } => {
                    Some(ProtectedPath::new("a dotenv file", path))
                }
                VariableProvider::Directory { path } => {
                    Some(ProtectedPath::new("a secrets directory", path))
                }
                VariableProvider::Environment { .. } | VariableProvider::Static { .. } => None,
            });
        let tls_files = self.client_tls.iter().flat_map(|tls| {
            let identity = tls.client_identity.iter().flat_map(|identity| {
                [
                    ProtectedPath::new("a TLS client certificate", &identity.cert_file),
                    ProtectedPath::new("a TLS private key", &identity.key_file),
                ]
            });
            tls.ca_roots_file
                .iter()
                .map(|path| ProtectedPath::new("a TLS roots file", path))
                .chain(identity)
                .collect::<Vec<_>>()
        });
        stores
            .chain(databases)
            .chain(providers)
            .chain(tls_files)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RuntimeConfig, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, text).unwrap();
        RuntimeConfig::load(&path)
    }

    #[test]
    fn client_tls_entries_with_spins_defaults_and_errors() {
        let config = load(
            "[[client_tls]]\ncomponent_ids = [\"api\"]\nhosts = [\"DB.example.com.\", \"[0:0::1]\"]\n\
             ca_roots_file = \"ca.pem\"\nclient_cert_file = \"c.pem\"\nclient_private_key_file = \"k.pem\"\n\
             [[client_tls]]\ncomponent_ids = [\"web\"]\nhosts = [\"api.example.com\"]\n",
        )
        .unwrap();
        let [first, second] = &config.client_tls[..] else {
            panic!("{:?}", config.client_tls)
        };
        assert_eq!(first.hosts, ["db.example.com", "::1"]);
        assert!(
            !first.use_builtin_roots,
            "a roots file replaces the built-in roots"
        );
        let roots = first.ca_roots_file.as_ref().unwrap();
        assert!(
            roots.is_absolute() && roots.ends_with("ca.pem"),
            "{roots:?}"
        );
        assert!(second.use_builtin_roots);
        assert!(config
            .protected_paths()
            .iter()
            .any(|p| p.what.contains("private key") && p.path.ends_with("k.pem")));

        let error =
            load("[[client_tls]]\ncomponent_ids = [\"a\"]\nhosts = [\"db:5432\"]\n").unwrap_err();
        assert_eq!(error.key, "client_tls[0].hosts");
        assert!(error.message.contains("without a scheme, port"), "{error}");
        let error = load(
            "[[client_tls]]\ncomponent_ids = [\"a\"]\nhosts = [\"db\"]\nclient_cert_file = \"c.pem\"\n",
        )
        .unwrap_err();
        assert_eq!(error.key, "client_tls[0].client_cert_file");
        assert_eq!(error.location.unwrap().line, 4);
    }

    #[test]
    fn blocked_networks_with_their_errors() {
        let config =
            load("[outbound_networking]\nblock_networks = [\"private\", \"10.0.0.0/8\"]\n")
                .unwrap();
        assert_eq!(config.blocked_networks.len(), 2);
        let error = load("[outbound_networking]\nblock_networks = [\"private\", \"intranet\"]\n")
            .unwrap_err();
        assert_eq!(error.key, "outbound_networking.block_networks[1]");
        assert_eq!(error.location.map(|l| l.line), Some(2));
        assert!(error.message.contains("CIDR"), "{}", error.message);
        assert!(load("[outbound_networking]\nallow = []\n").is_err());
    }

    #[test]
    fn backends_by_label() {
        let config = load(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
             [key_value_store.default]\ntype = \"sqlite\"\npath = \"data/kv.sqlite\"\n\
             [sqlite_database.reports]\ntype = \"sqlite\"\npath = \"/var/reports.sqlite\"\n",
        )
        .unwrap();
        assert_eq!(
            config.key_value_stores["cache"],
            StoreBackend::Redis {
                url: "redis://127.0.0.1:6379".into(),
                prefix: None,
                timeout: DEFAULT_REDIS_TIMEOUT,
            }
        );
        assert!(
            matches!(&config.key_value_stores["default"], StoreBackend::Sqlite { path } if path.ends_with("data/kv.sqlite"))
        );
        assert_eq!(
            config.sqlite_databases["reports"],
            DatabaseBackend::Sqlite {
                path: "/var/reports.sqlite".into()
            }
        );
    }

    #[test]
    fn variable_providers_in_order() {
        let config = load(
            "[[variable_provider]]\ntype = \"env\"\nprefix = \"APP_\"\n\
             [[variable_provider]]\ntype = \"directory\"\npath = \"/run/secrets\"\n\
             [[variable_provider]]\ntype = \"dotenv\"\npath = \"prod.env\"\n",
        )
        .unwrap();
        assert_eq!(
            config.variable_providers[0],
            VariableProvider::Environment {
                prefix: "APP_".into()
            }
        );
        assert_eq!(
            config.variable_providers[1],
            VariableProvider::Directory {
                path: "/run/secrets".into()
            }
        );
        assert!(matches!(
            &config.variable_providers[2],
            VariableProvider::Dotenv { path, prefix } if path.ends_with("prod.env") && prefix == "KITE_VARIABLE_"
        ));
        let err = load("[[variable_provider]]\ntype = \"vault\"\n").unwrap_err();
        assert!(err.key.starts_with("variable_provider"), "{err}");
        assert!(err.message.contains("vault"), "{err}");
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let err = load("[key_value_store.cache]\ntype = \"memcached\"\n").unwrap_err();
        assert!(err.key.starts_with("key_value_store.cache"), "{err}");
        assert!(err.message.contains("memcached"), "{err}");
        let err =
            load("[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://x\"\nport = 1\n")
                .unwrap_err();
        assert!(err.message.contains("port"), "{err}");
        let err = load(
            "[key_value_store.a]\ntype = \"sqlite\"\npath = \"a\"\n\
             [key_value_store.c]\ntype = \"redis\"\nurl = \"redis://x\"\ntimeout = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "key_value_store.c.timeout", "{err}");
        assert!(err.message.contains("invalid duration \"soon\""), "{err}");
        assert_eq!(err.location.map(|l| l.line), Some(7), "{err}");
        let err = load("[sqlite_database.r]\n\ntype = \"postgres\"\n").unwrap_err();
        assert_eq!(err.key, "sqlite_database.r.type", "{err}");
        assert!(err.message.contains("expected \"sqlite\""), "{err}");
        assert_eq!(err.location.map(|l| l.line), Some(3), "{err}");
        let err =
            load("[key_value_store.s]\ntype = \"sqlite\"\npath = \"a\"\nurl = \"redis://x\"\n")
                .unwrap_err();
        assert_eq!(err.key, "key_value_store.s.url", "{err}");
        assert!(err.message.contains("it takes: path"), "{err}");
        assert_eq!(err.location.map(|l| l.line), Some(4), "{err}");
        let err = load(
            "[[variable_provider]]\ntype = \"env\"\n[[variable_provider]]\ntype = \"dotenv\"\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "variable_provider[1]", "{err}");
        assert!(err.message.contains("needs `path`"), "{err}");
        assert_eq!(err.location.map(|l| l.line), Some(3), "{err}");
        let err = load("[mystery]\n").unwrap_err();
        assert!(err.message.contains("unknown field `mystery`"), "{err}");
    }

    #[test]
    fn spins_runtime_configuration_is_read() {
        let config = load(
            "state_dir = \"state\"\n\
             [key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n\
             [key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1\"\n\
             [sqlite_database.reports]\ntype = \"spin\"\npath = \"reports.db\"\n\
             [[variables_provider]]\ntype = \"static\"\nvalues = { api_key = \"k\" }\n\
             [[config_provider]]\ntype = \"env\"\nprefix = \"MY\"\ndotenv_path = \"x.env\"\n",
        );
        // `config_provider` is an alias: Spin, too, reads only one of the two lists.
        let error = config.unwrap_err();
        assert!(error.message.contains("duplicate"), "{error}");
        let config = load(
            "state_dir = \"state\"\n\
             [key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n\
             [sqlite_database.reports]\ntype = \"spin\"\npath = \"reports.db\"\n\
             [[variables_provider]]\ntype = \"static\"\nvalues = { api_key = \"k\" }\n\
             [[variables_provider]]\ntype = \"env\"\nprefix = \"MY\"\ndotenv_path = \"x.env\"\n",
        )
        .unwrap();
        assert!(config.state_dir.unwrap().ends_with("state"));
        assert!(
            matches!(&config.key_value_stores["default"], StoreBackend::SpinSqlite { path } if path.ends_with("kv.db"))
        );
        assert!(
            matches!(&config.sqlite_databases["reports"], DatabaseBackend::Sqlite { path } if path.ends_with("reports.db"))
        );
        assert_eq!(
            config.variable_providers[0],
            VariableProvider::Static {
                values: vec![("api_key".into(), "k".into())]
            }
        );
        assert_eq!(
            config.variable_providers[1],
            VariableProvider::Environment {
                prefix: "MY_".into()
            }
        );
        assert!(matches!(
            &config.variable_providers[2],
            VariableProvider::Dotenv { path, prefix } if path.ends_with("x.env") && prefix == "MY_"
        ));
        for (text, needle) in [
            (
                "[key_value_store.x]\ntype = \"aws_dynamo\"\n",
                "cloud service",
            ),
            ("[sqlite_database.x]\ntype = \"libsql\"\n", "cloud service"),
            ("[key_value_store.x]\ntype = \"spin\"\n", "in memory"),
            (
                "[[variables_provider]]\ntype = \"vault\"\nurl = \"u\"\n",
                "vault provider",
            ),
            (
                "[[variables_provider]]\ntype = \"env\"\nmount = \"m\"\n",
                "unknown setting `mount`",
            ),
            ("log_dir = \"logs\"\n", "`log_dir`"),
        ] {
            let error = load(text).unwrap_err();
            assert!(error.message.contains(needle), "{text}: {error}");
            assert!(error.location.is_some(), "{text}: {error}");
        }
    }
}
