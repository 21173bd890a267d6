//! The admin API client shared by `kite deploy`, `kite apps` and `kite login`: where the
//! server is and its token (flags, then environment, then the file `kite login` writes).

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

/// `--server` and `--token`, shared by the commands that talk to a `kite serve` host.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// The host's admin API, e.g. http://127.0.0.1:3001 [default: $KITE_SERVER, or what
    /// `kite login` saved].
    #[arg(long, value_name = "URL", env = "KITE_SERVER", global = true)]
    pub server: Option<String>,

    /// The admin token (printed at the server's first start, kept in its state directory
    /// as admin-token) [default: $KITE_TOKEN, or what `kite login` saved].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "KITE_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
}

/// What `kite login` saves.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedLogin {
    pub server: String,
    pub token: String,
}

/// `$KITE_CONFIG_DIR`, `$XDG_CONFIG_HOME/kite` or `~/.config/kite`, holding login.toml.
pub fn login_file() -> Option<PathBuf> {
    let dir = std::env::var_os("KITE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("kite")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".config/kite")))?;
    Some(dir.join("login.toml"))
}

fn saved_login() -> anyhow::Result<Option<SavedLogin>> {
    let Some(file) = login_file() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some(
            toml::from_str(&text).with_context(|| format!("reading {}", file.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// A client of one host's admin API.
pub struct AdminClient {
    server: String,
    token: String,
    agent: ureq::Agent,
}

/// An answer the API gave (any status).
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl AdminClient {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let saved = saved_login()?;
        let server = args
            .server
            .clone()
            .or_else(|| saved.as_ref().map(|s| s.server.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no server given: pass --server URL, set KITE_SERVER, or run `kite login`"
                )
            })?;
        let token = args
            .token
            .clone()
            .or_else(|| saved.map(|s| s.token))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no admin token given: pass --token, set KITE_TOKEN, or run `kite login`"
                )
            })?;
        Ok(Self::with(server, token))
    }

    pub fn with(server: String, token: String) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        AdminClient {
            server: server.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends a request with an optional body (`(bytes reader, length, content type)`).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&mut dyn Read, u64, &str)>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.server);
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token));
        let response = match body {
            Some((reader, length, content_type)) => {
                // The server may refuse a bundle (token, quota) before reading it: with
                // 100-continue the refusal arrives instead of a write into a closed socket.
                let request = request
                    .header("content-type", content_type)
                    .header("content-length", length)
                    .header("expect", "100-continue")
                    .body(ureq::SendBody::from_reader(reader))?;
                self.agent.run(request)
            }
            None => self.agent.run(request.body(())?),
        }
        .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok(Answer { status, body })
    }

    /// As [`Self::call`], with a JSON body; an error status becomes an error with the
    /// server's message.
    pub fn call_ok(
        &self,
        method: &str,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let answer = match json {
            Some(value) => {
                let bytes = serde_json::to_vec(value)?;
                let mut reader = bytes.as_slice();
                self.call(
                    method,
                    path,
                    Some((&mut reader, bytes.len() as u64, "application/json")),
                )?
            }
            None => self.call(method, path, None)?,
        };
        answer.ok()
    }
}

impl AdminClient {
    /// Follows a server-sent event stream, calling `on_line` with each event's data line,
    /// until the server ends it.
    pub fn follow(&self, path: &str, mut on_line: impl FnMut(&str)) -> anyhow::Result<()> {
        use std::io::BufRead;
        let url = format!("{}{path}", self.server);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .get(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.into_body().read_to_string().unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            Answer { status, body }.ok()?;
            return Ok(());
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line.with_context(|| format!("reading {url}"))?;
            if let Some(data) = line.strip_prefix("data: ") {
                on_line(data);
            }
        }
        Ok(())
    }
}

impl Answer {
    /// The body, or an error with the server's message for a status of 400 or more.
    pub fn ok(self) -> anyhow::Result<serde_json::Value> {
        if self.status < 400 {
            return Ok(self.body);
        }
        let message = self
            .body
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string());
        anyhow::bail!("the server answered {}: {message}", self.status)
    }
}
