//! The `kite` command: `up` serves an app, `build` runs its components' build commands,
//! `new` scaffolds an app from a template; `serve` hosts many apps, which `deploy`, `apps`
//! and `login` manage. Errors print one paragraph and exit non-zero.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod logging;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Kite runs WebAssembly components behind HTTP: a fresh, sandboxed instance per request
/// that can touch only what its manifest grants.
#[derive(Parser)]
#[command(name = "kite", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Up(Box<commands::up::UpArgs>),
    Build(commands::build::BuildArgs),
    New(commands::new::NewArgs),
    Serve(Box<commands::serve::ServeArgs>),
    Deploy(commands::deploy::DeployArgs),
    Apps(commands::apps::AppsArgs),
    Login(commands::login::LoginArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(matches!(cli.command, Command::Serve(_)));
    let result = match cli.command {
        Command::Up(args) => commands::up::run(*args),
        Command::Build(args) => commands::build::run(args),
        Command::New(args) => commands::new::run(args),
        Command::Serve(args) => commands::serve::run(*args),
        Command::Deploy(args) => commands::deploy::run(args),
        Command::Apps(args) => commands::apps::run(args),
        Command::Login(args) => commands::login::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
