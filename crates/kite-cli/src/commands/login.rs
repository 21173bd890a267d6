//! `kite login`: saves a host's admin API address and token (owner-only) for `kite deploy`
//! and `kite apps`, after checking that they work.

use super::client::{login_file, AdminClient, SavedLogin};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Save a `kite serve` host's admin API address and token for later commands.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The admin API, e.g. http://127.0.0.1:3001.
    #[arg(long, value_name = "URL", env = "KITE_SERVER")]
    pub server: String,

    /// The admin token (in the server's state directory, file admin-token).
    #[arg(long, value_name = "TOKEN", env = "KITE_TOKEN", hide_env_values = true)]
    pub token: String,
}

pub fn run(args: LoginArgs) -> anyhow::Result<()> {
    let client = AdminClient::with(args.server.clone(), args.token.clone());
    client
        .call_ok("GET", "/v1/apps", None)
        .map_err(|e| anyhow::anyhow!("{}: {e}", client.server()))?;
    let file = login_file().ok_or_else(|| anyhow::anyhow!("no home directory to save into"))?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let saved = SavedLogin {
        server: args.server,
        token: args.token,
    };
    // Written whole under a temporary name made owner-only, then renamed: the token is never
    // in a file others can read, even one that existed with a wider mode.
    let temp = file.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&temp);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    out.write_all(toml::to_string(&saved)?.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&temp, &file)?;
    println!(
        "Logged in to {}; saved in {}",
        client.server(),
        file.display()
    );
    Ok(())
}
