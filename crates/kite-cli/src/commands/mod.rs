//! One module per `kite` subcommand.

pub mod apps;
pub mod build;
pub mod client;
pub mod deploy;
pub mod login;
pub mod new;
pub mod serve;
pub mod up;

use std::path::PathBuf;

/// `-f DIR|FILE`, shared by commands that read an app.
#[derive(clap::Args, Debug, Clone)]
pub struct AppLocation {
    /// The app's directory (holding kite.toml, or a Spin app's spin.toml) or manifest file.
    #[arg(
        short = 'f',
        long = "file",
        visible_alias = "from",
        value_name = "DIR|FILE",
        default_value = "."
    )]
    pub path: PathBuf,
}

impl AppLocation {
    pub fn load(&self) -> anyhow::Result<kite_app::App> {
        Ok(kite_app::load_app(&self.path)?)
    }
}
