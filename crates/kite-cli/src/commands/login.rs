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
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)?;
    out.write_all(toml::to_string(&saved)?.as_bytes())?;
    // A file that existed keeps its mode when opened; the token is for the owner only.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    println!(
        "Logged in to {}; saved in {}",
        client.server(),
        file.display()
    );
    Ok(())
}
