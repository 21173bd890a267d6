//! `kite up`: load the app, optionally build it, compile every component once (with
//! progress), listen, print the route table and serve until Ctrl-C or SIGTERM.

use super::AppLocation;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kite_app::{
    ProtectedPath, ResolvedVariables, RuntimeConfig, VariableProvider, VariableSources,
};
use kite_engine::{EngineOptions, KiteEngine};
use kite_host::{AppResources, KeyValueStores, SqliteDatabases};
use kite_http::HttpTrigger;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Serve an app: every request runs in a fresh instance of the component its route names.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub app: AppLocation,

    /// Address to listen on. Use port 0 to let the OS choose a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Run each component's build command before serving.
    #[arg(long)]
    pub build: bool,

    #[command(flatten)]
    pub cache: super::CacheFlags,

    /// Most client connections open at once; further ones wait to be accepted until one
    /// closes.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_connections: usize,

    /// Set an app variable, overriding every other provider (repeatable).
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = parse_variable)]
    pub variables: Vec<(String, String)>,

    /// Dotenv file with `KITE_VARIABLE_<NAME>=value` lines (`SPIN_VARIABLE_<NAME>` for a Spin
    /// app) [default: `.env` beside the manifest, if present]. Not with a runtime
    /// configuration that lists variable providers.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// Set a key in a key-value store before serving: `LABEL:KEY=VALUE`, or `KEY=VALUE` for
    /// the `default` store (repeatable; idempotent).
    #[arg(long = "key-value", value_name = "[LABEL:]KEY=VALUE", value_parser = parse_key_value_seed)]
    pub key_value_seeds: Vec<(String, String, String)>,

    /// Run SQL on a database before serving: `LABEL:@FILE` or `LABEL:STATEMENTS`; Spin's
    /// `@FILE`, `@FILE:LABEL` and bare `STATEMENTS` (on `default`) work too (repeatable;
    /// each distinct script runs once per database, however often Kite starts).
    #[arg(long = "sqlite", value_name = "LABEL:@FILE|LABEL:SQL", value_parser = parse_sqlite_seed)]
    pub sqlite_seeds: Vec<(String, String)>,

    /// Set an environment variable in every component, over the manifest's `environment`
    /// (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_environment)]
    pub environment: Vec<(String, String)>,

    /// Runtime configuration: which backend (SQLite file, Redis) serves each store label, and
    /// where variable values come from (docs/runtime-config.md). Spin's
    /// runtime-config.toml is read too.
    #[arg(long, alias = "runtime-config-file", value_name = "FILE")]
    pub runtime_config: Option<PathBuf>,

    /// Where the app's stores live [default: the runtime configuration's `state_dir`, or
    /// `.kite` beside the manifest (`.spin` for a Spin app, where `spin up` keeps it)].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Largest number of instances alive at once across all components.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_instances: u32,

    #[command(flatten)]
    pub server: super::ServerFlags,
}

/// `LABEL:KEY=VALUE`, or Spin's `KEY=VALUE` for the `default` store (a `:` in the text
/// before the first `=` separates the label).
fn parse_key_value_seed(text: &str) -> Result<(String, String, String), String> {
    let (target, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected [LABEL:]KEY=VALUE, got {text:?}"))?;
    let (label, key) = target
        .split_once(':')
        .unwrap_or((kite_app::DEFAULT_STORE, target));
    if label.is_empty() || key.is_empty() {
        return Err(format!("expected [LABEL:]KEY=VALUE, got {text:?}"));
    }
    Ok((label.to_string(), key.to_string(), value.to_string()))
}

/// `LABEL:@FILE`, `LABEL:SQL`, or Spin's `@FILE`, `@FILE:LABEL` and `SQL` (on `default`).
/// A label is letters, digits, `-` and `_`; text before a `:` that is not one is SQL.
fn parse_sqlite_seed(text: &str) -> Result<(String, String), String> {
    let is_label = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    };
    let read = |path: &str| -> Result<String, String> {
        if path.is_empty() {
            return Err(format!("no file named in --sqlite {text:?}"));
        }
        std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
    };
    if let Some(spin_file) = text.strip_prefix('@') {
        return match spin_file.rsplit_once(':') {
            Some((path, label)) if is_label(label) => Ok((label.to_string(), read(path)?)),
            _ => Ok((kite_app::DEFAULT_STORE.to_string(), read(spin_file)?)),
        };
    }
    match text.split_once(':') {
        Some((label, sql)) if is_label(label) => match sql.strip_prefix('@') {
            Some(path) => Ok((label.to_string(), read(path)?)),
            None => Ok((label.to_string(), sql.to_string())),
        },
        _ if text.trim().is_empty() => Err("--sqlite needs a statement or @FILE".to_string()),
        _ => Ok((kite_app::DEFAULT_STORE.to_string(), text.to_string())),
    }
}

fn parse_environment(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))?;
    if name.is_empty() || name.contains('\0') {
        return Err(format!("invalid environment variable name {name:?}"));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_variable(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    Ok((name.trim().to_string(), value.to_string()))
}

/// Every app variable's value from `--variable`, the providers (the runtime configuration's,
/// or the environment and the dotenv file) and the defaults.
fn resolve_variables(
    app: &kite_app::App,
    args: &UpArgs,
    runtime_config: &RuntimeConfig,
) -> anyhow::Result<ResolvedVariables> {
    let prefix = if app.format.is_spin() {
        kite_app::SPIN_ENV_PREFIX
    } else {
        kite_app::ENV_PREFIX
    };
    let mut providers = if runtime_config.variable_providers.is_empty() {
        let default_env_file = app.dir.join(".env");
        let env_file = match &args.env_file {
            Some(path) => Some(path.clone()),
            None => default_env_file.is_file().then_some(default_env_file),
        };
        VariableProvider::default_chain(env_file, prefix)
    } else {
        if let Some(env_file) = &args.env_file {
            anyhow::bail!(
                "--env-file {}: the runtime configuration lists its own variable providers; add this file there as [[variable_provider]] type = \"dotenv\"",
                env_file.display()
            );
        }
        runtime_config.variable_providers.clone()
    };
    // Spin always reads `SPIN_VARIABLE_*` last, whatever else the runtime configuration lists.
    let spin_environment = VariableProvider::Environment {
        prefix: kite_app::SPIN_ENV_PREFIX.to_string(),
    };
    if app.format.is_spin() && !providers.contains(&spin_environment) {
        providers.push(spin_environment);
    }
    let sources = VariableSources::load(args.variables.clone(), &providers)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    ResolvedVariables::resolve(&app.variables, &sources).map_err(|e| anyhow::anyhow!("{e}"))
}

/// What the host keeps for this run that no directory grant may hold.
fn protected_paths(
    args: &UpArgs,
    state_dir: &Path,
    runtime_config: &RuntimeConfig,
    cache_dir: &Option<PathBuf>,
) -> Vec<ProtectedPath> {
    let mut protected = vec![ProtectedPath::new("the state directory", state_dir)];
    protected.extend(
        args.env_file
            .iter()
            .map(|f| ProtectedPath::new("the dotenv file", f)),
    );
    protected.extend(
        args.runtime_config
            .iter()
            .map(|f| ProtectedPath::new("the runtime configuration", f)),
    );
    protected.extend(
        cache_dir
            .iter()
            .map(|d| ProtectedPath::new("the compile cache", d)),
    );
    protected.extend(runtime_config.protected_paths());
    protected
}

/// Points every component with a `{ url, digest }` source at its file in `downloads`,
/// downloading (and checking) the ones not there yet.
pub(crate) fn fetch_downloads(
    app: &mut kite_app::App,
    downloads: &Path,
    runtime_config: &RuntimeConfig,
) -> anyhow::Result<()> {
    let wanted: Vec<usize> = (0..app.components.len())
        .filter(|&i| app.components[i].download.is_some())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for index in wanted {
        let component = &mut app.components[index];
        let Some(download) = component.download.clone() else {
            continue;
        };
        let file = downloads.join(format!("sha256-{}.wasm", download.sha256));
        // A file already there is used only if it still has the digest.
        let intact = std::fs::read(&file)
            .map(|bytes| kite_host::download::sha256_hex(&bytes) == download.sha256)
            .unwrap_or(false);
        if !intact {
            tracing::info!("component `{}`: downloading {}", component.id, download.url);
            let bytes = runtime
                .block_on(kite_host::download::download(
                    &download.url,
                    &download.sha256,
                    &runtime_config.blocked_networks,
                ))
                .with_context(|| format!("component `{}`", component.id))?;
            std::fs::create_dir_all(downloads)
                .with_context(|| format!("creating {}", downloads.display()))?;
            // Written whole under a temporary name, so a file with the final name is complete.
            let partial = downloads.join(format!(".sha256-{}.partial", download.sha256));
            std::fs::write(&partial, &bytes)
                .and_then(|()| std::fs::rename(&partial, &file))
                .with_context(|| format!("writing {}", file.display()))?;
        }
        component.source = file;
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard one: every client connection, outbound
/// connection, granted file a guest opens and SQLite file takes a descriptor, and the usual
/// soft limit (1024) is below what the default caps allow together.
pub(crate) fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::debug!("could not raise the open-file limit");
            }
        }
    }
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    raise_open_file_limit();
    let mut app = args.app.load()?;
    for component in &mut app.components {
        for (name, value) in &args.environment {
            component
                .environment
                .retain(|(existing, _)| existing != name);
            component.environment.push((name.clone(), value.clone()));
        }
    }
    if args.build {
        super::build::build_app(&app)?;
    }
    let runtime_config = match &args.runtime_config {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let state_dir = args
        .state_dir
        .clone()
        .or_else(|| runtime_config.state_dir.clone())
        .unwrap_or_else(|| app.dir.join(app.format.default_state_dir()));
    let cache_dir = args.cache.dir();
    let downloads = cache_dir.as_ref().unwrap_or(&state_dir).join("downloads");
    fetch_downloads(&mut app, &downloads, &runtime_config)?;
    app.check_sources()?;
    app.check_store_grants(
        &runtime_config.key_value_labels(),
        &runtime_config.sqlite_labels(),
    )?;
    app.check_file_grants(&protected_paths(
        &args,
        &state_dir,
        &runtime_config,
        &cache_dir,
    ))?;
    let kv_seeded: Vec<&str> = args
        .key_value_seeds
        .iter()
        .map(|(l, _, _)| l.as_str())
        .collect();
    let sql_seeded: Vec<&str> = args.sqlite_seeds.iter().map(|(l, _)| l.as_str()).collect();
    let variables = resolve_variables(&app, &args, &runtime_config)?;
    app.resolve_outbound_templates(&variables)
        .map_err(|e| anyhow::anyhow!("{}: {e}", app.manifest_path.display()))?;
    let resources = AppResources::new(
        variables,
        KeyValueStores::open(&app, &state_dir, &runtime_config, &kv_seeded)?,
        SqliteDatabases::open(&app, &state_dir, &runtime_config, &sql_seeded)?,
        runtime_config.blocked_networks.clone(),
        runtime_config.client_tls.clone(),
    )?;
    if !args.key_value_seeds.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            for (label, key, value) in &args.key_value_seeds {
                resources.key_value.seed(label, key, value).await?;
            }
            anyhow::Ok(())
        })?;
    }
    for (label, script) in &args.sqlite_seeds {
        let ran = resources.sqlite.seed(label, script)?;
        tracing::info!(
            "SQLite database `{label}`: seed script {}",
            if ran {
                "applied"
            } else {
                "already applied, skipped"
            }
        );
    }

    let options = EngineOptions {
        max_memory: app
            .components
            .iter()
            .map(|c| c.limits.memory)
            .max()
            .unwrap_or(128 << 20),
        max_instances: args.max_instances,
        cache_dir,
        pooling: true,
    };
    let engine = KiteEngine::new(&options).context("creating the WebAssembly engine")?;
    let trigger = prepare_with_progress(&app, &engine, &resources)?;

    let listener = TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    print_banner(&app, &trigger, address);

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    watch_for_shutdown_signals(stop)?;
    let serve_options = args.server.serve_options(args.max_connections);
    kite_http::serve(trigger, listener, &serve_options, shutdown)?;
    tracing::info!("stopped");
    Ok(())
}

fn prepare_with_progress(
    app: &kite_app::App,
    engine: &KiteEngine,
    resources: &AppResources,
) -> anyhow::Result<Arc<HttpTrigger>> {
    let bar = if std::io::stderr().is_terminal() && app.components.len() > 1 {
        let bar = ProgressBar::new(app.components.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} preparing components {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let trigger = HttpTrigger::prepare(app, engine, resources, |loaded| {
        let how = if loaded.from_cache {
            "loaded from cache"
        } else {
            "compiled"
        };
        let line = format!("component `{}` {how} in {:.2?}", loaded.id, loaded.elapsed);
        match &bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(line);
            }
            None => tracing::info!("{line}"),
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    trigger
}

/// The app, its routes, then the address: the `listening on` line comes last, so whoever
/// waits for it (scripts, tests) has the whole route table already.
fn print_banner(app: &kite_app::App, trigger: &HttpTrigger, address: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Serving app `{}`", app.name);
    let routes = trigger.route_table();
    if routes.is_empty() {
        let _ = writeln!(
            out,
            "No routes: every request will get 404. Add routes to the manifest."
        );
    } else {
        let _ = writeln!(out, "Routes (most specific first):");
        let width = routes.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
        for (route, component) in routes {
            let _ = writeln!(out, "  {route:width$}  ->  {component}");
        }
    }
    let _ = writeln!(out, "listening on http://{address}");
    let _ = out.flush();
}

/// Ctrl-C or SIGTERM starts a graceful shutdown; a second Ctrl-C exits at once (status 130).
pub(crate) fn watch_for_shutdown_signals(
    stop: tokio::sync::watch::Sender<bool>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("kite-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                let mut terminate =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(signal) => signal,
                        Err(e) => {
                            tracing::warn!("cannot watch for SIGTERM: {e}");
                            let _ = tokio::signal::ctrl_c().await;
                            let _ = stop.send(true);
                            return;
                        }
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                tracing::info!(
                    "shutting down: no new connections; waiting for in-flight requests (Ctrl-C again to stop at once)"
                );
                let _ = stop.send(true);
                let _ = tokio::signal::ctrl_c().await;
                tracing::warn!("stopping at once; in-flight requests are dropped");
                std::process::exit(130);
            });
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_seeds_take_kites_and_spins_forms() {
        let seed = |text| parse_key_value_seed(text).unwrap();
        assert_eq!(seed("cache:k=v"), ("cache".into(), "k".into(), "v".into()));
        assert_eq!(seed("k=v=w"), ("default".into(), "k".into(), "v=w".into()));
        assert_eq!(seed("k=a:b"), ("default".into(), "k".into(), "a:b".into()));
        assert!(parse_key_value_seed("no-equals").is_err());
        assert!(parse_key_value_seed(":k=v").is_err());
    }

    #[test]
    fn sqlite_seeds_take_kites_and_spins_forms() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seed.sql");
        std::fs::write(&file, "CREATE TABLE t(x);").unwrap();
        let file = file.display().to_string();
        let seed = |text: &str| parse_sqlite_seed(text).unwrap();
        let script = "CREATE TABLE t(x);".to_string();
        assert_eq!(seed(&format!("db:@{file}")), ("db".into(), script.clone()));
        assert_eq!(
            seed(&format!("@{file}")),
            ("default".into(), script.clone())
        );
        assert_eq!(seed(&format!("@{file}:db")), ("db".into(), script));
        assert_eq!(seed("db:SELECT 1"), ("db".into(), "SELECT 1".into()));
        assert_eq!(
            seed("INSERT INTO t VALUES ('a:b')"),
            ("default".into(), "INSERT INTO t VALUES ('a:b')".into())
        );
        assert!(parse_sqlite_seed("@").is_err());
        assert!(parse_sqlite_seed("db:@/nonexistent/file.sql").is_err());
    }
}
