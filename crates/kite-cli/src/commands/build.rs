//! `kite build`: runs each component's `build.command` in its `workdir`, checking first
//! that the Rust targets it names are installed.

use super::AppLocation;
use anyhow::{bail, Context};
use kite_app::{App, BuildSpec};
use std::path::Path;
use std::process::Command;

/// Build every component that has a `build` command.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub app: AppLocation,
}

pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let app = args.app.load()?;
    build_app(&app)?;
    app.check_sources()?;
    Ok(())
}

pub fn build_app(app: &App) -> anyhow::Result<()> {
    for component in &app.components {
        let Some(build) = &component.build else {
            continue;
        };
        eprintln!("Building component `{}`: {}", component.id, build.command);
        check_rust_targets(build)?;
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&build.workdir)
            // `source` paths are relative to the app, so builds must write into the app's
            // own target directory, not one redirected for the shell that runs Kite.
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .with_context(|| {
                format!("running the build command of component `{}`", component.id)
            })?;
        if !status.success() {
            bail!(
                "the build command of component `{}` failed ({status}): `{}` in {}",
                component.id,
                build.command,
                build.workdir.display()
            );
        }
    }
    Ok(())
}

/// A build naming a Rust wasm target that rustup has not installed fails with a hint.
fn check_rust_targets(build: &BuildSpec) -> anyhow::Result<()> {
    for target in ["wasm32-wasip2", "wasm32-wasip1"] {
        let named = build
            .command
            .split_whitespace()
            .any(|word| word == target || word == format!("--target={target}"));
        if named && !rust_target_installed(target, &build.workdir) {
            bail!(
                "the Rust target `{target}` is not installed, so `{}` cannot build; install it with `rustup target add {target}`",
                build.command
            );
        }
    }
    Ok(())
}

fn rust_target_installed(target: &str, workdir: &Path) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(output) = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(workdir)
        .output()
    else {
        return true; // No rustc to ask: let the build itself report what is missing.
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(target)
        .is_dir()
}
