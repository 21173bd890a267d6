//! The runtime configuration file (`kite up --runtime-config`): which backend serves each
//! store label and where variable values come from. Kept apart from the manifest so one app
//! runs unchanged on different machines.

use crate::units::duration_serde;
use crate::{Location, ManifestError, VariableProvider, ENV_PREFIX};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a Redis connect, command or reply may take unless `timeout` says otherwise.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, StoreBackend>,
    pub sqlite_databases: BTreeMap<String, DatabaseBackend>,
    /// The variable providers in priority order; empty means the default chain.
    pub variable_providers: Vec<VariableProvider>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// An SQLite file (absolute, resolved from the config file's directory).
    Sqlite { path: PathBuf },
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
    key_value_store: BTreeMap<String, RawStore>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawDatabase>,
    #[serde(default)]
    variable_provider: Vec<RawVariableProvider>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawVariableProvider {
    Env {
        prefix: Option<String>,
    },
    Dotenv {
        path: String,
        prefix: Option<String>,
    },
    Directory {
        path: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawStore {
    Sqlite {
        path: String,
    },
    Redis {
        url: String,
        prefix: Option<String>,
        #[serde(default, deserialize_with = "duration_serde::deserialize")]
        timeout: Option<Duration>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawDatabase {
    Sqlite { path: String },
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
        let resolve = |p: &str| dir.join(p);
        Ok(RuntimeConfig {
            key_value_stores: raw
                .key_value_store
                .into_iter()
                .map(|(label, store)| {
                    let backend = match store {
                        RawStore::Sqlite { path } => StoreBackend::Sqlite {
                            path: resolve(&path),
                        },
                        RawStore::Redis {
                            url,
                            prefix,
                            timeout,
                        } => StoreBackend::Redis {
                            url,
                            prefix,
                            timeout: timeout.unwrap_or(DEFAULT_REDIS_TIMEOUT),
                        },
                    };
                    (label, backend)
                })
                .collect(),
            sqlite_databases: raw
                .sqlite_database
                .into_iter()
                .map(|(label, RawDatabase::Sqlite { path })| {
                    (
                        label,
                        DatabaseBackend::Sqlite {
                            path: resolve(&path),
                        },
                    )
                })
                .collect(),
            variable_providers: raw
                .variable_provider
                .into_iter()
                .map(|provider| {
                    let prefix = |p: Option<String>| p.unwrap_or_else(|| ENV_PREFIX.to_string());
                    match provider {
                        RawVariableProvider::Env { prefix: p } => {
                            VariableProvider::Environment { prefix: prefix(p) }
                        }
                        RawVariableProvider::Dotenv { path, prefix: p } => {
                            VariableProvider::Dotenv {
                                path: resolve(&path),
                                prefix: prefix(p),
                            }
                        }
                        RawVariableProvider::Directory { path } => VariableProvider::Directory {
                            path: resolve(&path),
                        },
                    }
                })
                .collect(),
        })
    }

    pub fn key_value_labels(&self) -> Vec<String> {
        self.key_value_stores.keys().cloned().collect()
    }

    pub fn sqlite_labels(&self) -> Vec<String> {
        self.sqlite_databases.keys().cloned().collect()
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
        // Inside a tagged table serde reports the table: its line and key, and the value.
        let err = load(
            "[key_value_store.a]\ntype = \"sqlite\"\npath = \"a\"\n\
             [key_value_store.c]\ntype = \"redis\"\nurl = \"redis://x\"\ntimeout = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(err.key, "key_value_store.c", "{err}");
        assert!(err.message.contains("invalid duration \"soon\""), "{err}");
        assert_eq!(err.location.map(|l| l.line), Some(4), "{err}");
        let err = load("[mystery]\n").unwrap_err();
        assert!(err.message.contains("unknown field `mystery`"), "{err}");
    }
}
