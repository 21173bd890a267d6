//! Where app variable values come from: `--variable` pairs first, then a chain of providers
//! (environment variables, dotenv files, a directory of secret files), then the defaults.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The environment-variable prefix of the default chain: `api_token` → `KITE_VARIABLE_API_TOKEN`.
pub const ENV_PREFIX: &str = "KITE_VARIABLE_";

/// The prefix Spin reads variables from, for Spin apps: `api_token` → `SPIN_VARIABLE_API_TOKEN`.
pub const SPIN_ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// Largest file the directory provider reads as one value.
const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// One provider, as the runtime configuration (or the default chain) describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableProvider {
    /// Process environment variables named `<prefix><NAME>`.
    Environment { prefix: String },
    /// `<prefix><NAME>=value` lines of a dotenv file.
    Dotenv { path: PathBuf, prefix: String },
    /// One file per variable, named like the variable, holding its value (a trailing newline
    /// is dropped): the layout of mounted container secrets such as `/run/secrets`.
    Directory { path: PathBuf },
    /// Values written in the runtime configuration (Spin's `static` provider), by variable name.
    Static { values: Vec<(String, String)> },
}

impl VariableProvider {
    /// The chain without a runtime configuration: `<prefix>*` from the environment, then the
    /// dotenv file, if there is one ([`ENV_PREFIX`], or [`SPIN_ENV_PREFIX`] for Spin apps).
    pub fn default_chain(dotenv: Option<PathBuf>, prefix: &str) -> Vec<VariableProvider> {
        let mut chain = vec![VariableProvider::Environment {
            prefix: prefix.to_string(),
        }];
        if let Some(path) = dotenv {
            chain.push(VariableProvider::Dotenv {
                path,
                prefix: prefix.to_string(),
            });
        }
        chain
    }
}

/// The name `prefix` gives variable `name`, e.g. `KITE_VARIABLE_API_TOKEN`.
pub fn prefixed_name(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", name.to_ascii_uppercase())
}

/// A provider ready to answer lookups.
#[derive(Debug, Clone)]
enum Source {
    Values {
        values: HashMap<String, String>,
        prefix: String,
        /// Where the values came from, for "set it in ..." hints.
        origin: String,
    },
    Directory {
        path: PathBuf,
    },
}

/// Every variable source, highest priority first.
#[derive(Debug, Clone, Default)]
pub struct VariableSources {
    pub(crate) overrides: Vec<(String, String)>,
    sources: Vec<Source>,
}

impl VariableSources {
    /// `--variable` pairs and `providers`, in that order; environment providers read the
    /// process environment now, dotenv files are read and parsed now.
    pub fn load(
        overrides: Vec<(String, String)>,
        providers: &[VariableProvider],
    ) -> Result<Self, String> {
        Self::load_with_environment(overrides, providers, std::env::vars())
    }

    pub(crate) fn load_with_environment(
        overrides: Vec<(String, String)>,
        providers: &[VariableProvider],
        environment: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, String> {
        let environment: Vec<(String, String)> = environment.collect();
        let mut sources = Vec::new();
        for provider in providers {
            sources.push(match provider {
                VariableProvider::Environment { prefix } => Source::Values {
                    values: environment
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix.as_str()))
                        .cloned()
                        .collect(),
                    prefix: prefix.clone(),
                    origin: "the environment".into(),
                },
                VariableProvider::Dotenv { path, prefix } => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("reading the dotenv file {}: {e}", path.display()))?;
                    Source::Values {
                        values: parse_dotenv(&text)
                            .map_err(|e| format!("{}: {e}", path.display()))?,
                        prefix: prefix.clone(),
                        origin: path.display().to_string(),
                    }
                }
                VariableProvider::Static { values } => Source::Values {
                    values: values
                        .iter()
                        .map(|(name, value)| (prefixed_name("", name), value.clone()))
                        .collect(),
                    prefix: String::new(),
                    origin: "the runtime configuration".into(),
                },
                VariableProvider::Directory { path } => {
                    if !path.is_dir() {
                        return Err(format!(
                            "the variable directory {} does not exist or is not a directory",
                            path.display()
                        ));
                    }
                    Source::Directory { path: path.clone() }
                }
            });
        }
        Ok(VariableSources { overrides, sources })
    }

    /// The value of `name` from the first source that has one.
    pub(crate) fn lookup(&self, name: &str) -> Result<Option<String>, String> {
        if let Some((_, v)) = self.overrides.iter().rev().find(|(k, _)| k == name) {
            return Ok(Some(v.clone()));
        }
        for source in &self.sources {
            let found = match source {
                Source::Values { values, prefix, .. } => {
                    values.get(&prefixed_name(prefix, name)).cloned()
                }
                Source::Directory { path } => read_secret_file(&path.join(name))?,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// How a person could supply `name`, one clause per source.
    pub(crate) fn how_to_supply(&self, name: &str) -> String {
        let ways: Vec<String> = self
            .sources
            .iter()
            .map(|source| match source {
                Source::Values { prefix, origin, .. } => {
                    format!("set {} in {origin}", prefixed_name(prefix, name))
                }
                Source::Directory { path } => {
                    format!("write it to {}", path.join(name).display())
                }
            })
            .collect();
        let last = format!("pass `--variable {name}=VALUE`");
        if ways.is_empty() {
            last
        } else {
            format!("{}, or {last}", ways.join(", "))
        }
    }
}

/// A secret file's text without its trailing newline; `None` when there is no such file.
fn read_secret_file(path: &Path) -> Result<Option<String>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "{} is larger than {MAX_SECRET_FILE} bytes, too large for a variable",
            path.display()
        ));
    }
    let mut text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Some(text))
}

/// `NAME=value` lines; blank lines and `#` comments skipped; `export ` and quotes allowed.
fn parse_dotenv(text: &str) -> Result<HashMap<String, String>, String> {
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected NAME=value", number + 1))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        values.insert(key.trim().to_string(), value.to_string());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn providers_answer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let dotenv = dir.path().join("vars.env");
        std::fs::write(&dotenv, "APP_TOKEN=from-dotenv\nAPP_URL=dotenv-url\n").unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(secrets.join("token"), "from-file\n").unwrap();
        std::fs::write(secrets.join("key"), "k\r\n").unwrap();
        let providers = [
            VariableProvider::Environment {
                prefix: "APP_".into(),
            },
            VariableProvider::Directory {
                path: secrets.clone(),
            },
            VariableProvider::Dotenv {
                path: dotenv,
                prefix: "APP_".into(),
            },
        ];
        let sources = VariableSources::load_with_environment(
            vec![("url".into(), "from-cli".into())],
            &providers,
            env(&[("APP_NAME", "from-env"), ("KITE_VARIABLE_TOKEN", "ignored")]),
        )
        .unwrap();
        let get = |name: &str| sources.lookup(name).unwrap();
        assert_eq!(get("name").as_deref(), Some("from-env"));
        assert_eq!(get("token").as_deref(), Some("from-file"));
        assert_eq!(get("key").as_deref(), Some("k"));
        assert_eq!(get("url").as_deref(), Some("from-cli"));
        assert_eq!(get("other"), None);
        let hint = sources.how_to_supply("other");
        assert_eq!(
            hint,
            format!(
                "set APP_OTHER in the environment, write it to {}, set APP_OTHER in {}, or pass `--variable other=VALUE`",
                secrets.join("other").display(),
                dir.path().join("vars.env").display()
            )
        );
    }

    #[test]
    fn unreadable_sources_are_errors() {
        let missing = VariableSources::load(
            Vec::new(),
            &[VariableProvider::Directory {
                path: "/nonexistent/secrets".into(),
            }],
        )
        .unwrap_err();
        assert!(missing.contains("/nonexistent/secrets"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![b'x'; 2 << 20]).unwrap();
        let sources = VariableSources::load(
            Vec::new(),
            &[VariableProvider::Directory {
                path: dir.path().into(),
            }],
        )
        .unwrap();
        assert!(sources.lookup("big").unwrap_err().contains("too large"));
    }

    #[test]
    fn dotenv_files() {
        let parsed = parse_dotenv(
            "# c\nexport KITE_VARIABLE_A=\"q\"\nKITE_VARIABLE_B='s'\n\nKITE_VARIABLE_C=x=y\n",
        )
        .unwrap();
        assert_eq!(parsed["KITE_VARIABLE_A"], "q");
        assert_eq!(parsed["KITE_VARIABLE_B"], "s");
        assert_eq!(parsed["KITE_VARIABLE_C"], "x=y");
        assert!(parse_dotenv("novalue").is_err());
    }
}
