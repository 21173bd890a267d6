//! One deployed version made ready to serve: its manifest loaded with the same loader as
//! `kite up`, its components compiled and linked, its stores opened in the app's data dir.

use crate::bundle::{component_path, BundleIndex, APP_DIR};
use crate::quotas::Quotas;
use kite_app::{
    App, DatabaseBackend, ProtectedPath, ResolvedVariables, RuntimeConfig, StoreBackend,
    VariableSources,
};
use kite_engine::KiteEngine;
use kite_host::{AppResources, KeyValueStores, SqliteDatabases};
use kite_http::{AheadBudget, FailureCounts, HttpTrigger, Linkers, ServeOptions, TriggerOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A version that can take requests.
pub struct AppRuntime {
    pub version: u32,
    pub trigger: Arc<HttpTrigger>,
    /// `(route, component)`, most specific first.
    pub routes: Vec<(String, String)>,
    /// Where the guests' failures are counted (shared by the app's versions).
    pub failures: Arc<FailureCounts>,
    /// The app's quota gate (shared by its versions and the live app).
    pub quota: Arc<arc_swap::ArcSwap<crate::quotas::QuotaGate>>,
    /// Kept alive with the trigger: the stores and the service-chaining dispatch.
    _resources: AppResources,
}

/// What loading a version needs besides its files.
pub struct LoadContext<'a> {
    pub engine: &'a KiteEngine,
    /// Networks the operator keeps every app away from.
    pub blocked_networks: &'a [kite_app::BlockedNetwork],
    /// The longest deadline any request of the app may have.
    pub max_timeout: std::time::Duration,
    /// The app's effective quotas.
    pub quotas: &'a Quotas,
    pub variables: &'a BTreeMap<String, String>,
    /// Where the app's stores live.
    pub data_dir: &'a Path,
    pub serve: &'a ServeOptions,
    pub failures: Arc<FailureCounts>,
    /// Instances built ahead, across the host.
    pub ahead_budget: Arc<AheadBudget>,
    /// Made once for the host.
    pub linkers: Arc<Linkers>,
    /// The app's quota gate, which also admits the requests the app sends itself.
    pub quota: Arc<arc_swap::ArcSwap<crate::quotas::QuotaGate>>,
}

/// Loads version `version` unpacked at `version_dir`. Errors are the loader's, with paths
/// shown relative to the bundle's app directory, as the user wrote them.
pub fn load_version(
    app_name: &str,
    version: u32,
    version_dir: &Path,
    index: &BundleIndex,
    context: &LoadContext<'_>,
) -> anyhow::Result<AppRuntime> {
    let app_dir = version_dir.join(APP_DIR);
    let shown = |e: &dyn std::fmt::Display| {
        let text = e.to_string();
        let prefix = format!("{}/", app_dir.display());
        anyhow::anyhow!("{}", text.replace(&prefix, ""))
    };
    let mut app = kite_app::load_app(&app_dir.join(&index.manifest)).map_err(|e| shown(&e))?;
    use_bundled_sources(&mut app, version_dir, index)?;
    apply_memory_quota(&mut app, context.quotas, context.max_timeout);
    check_app_size(&app, context.quotas)?;
    refuse_writable_directories(&app)?;
    app.check_file_grants(&[ProtectedPath::new(
        "the app's data directory",
        context.data_dir,
    )])
    .map_err(|e| shown(&e))?;
    let runtime_config = stores_in(&app, context.data_dir, context.quotas.store_size)?;
    let variables = resolve_variables(app_name, &app, context.variables)?;
    app.resolve_outbound_templates(&variables)
        .map_err(|e| anyhow::anyhow!("{}: {e}", index.manifest))?;
    std::fs::create_dir_all(context.data_dir)?;
    let mut resources = AppResources::new(
        variables,
        KeyValueStores::open(&app, context.data_dir, &runtime_config, &[])?,
        SqliteDatabases::open(&app, context.data_dir, &runtime_config, &[])?,
        context.blocked_networks.to_vec(),
        Vec::new(),
    )?;
    resources.app_label = Some(app_name.into());
    let failures = context.failures.clone();
    let options = TriggerOptions {
        failures: failures.clone(),
        ahead_budget: Some(context.ahead_budget.clone()),
        linkers: Some(context.linkers.clone()),
        chain_admission: Some(chain_admission(app_name, context.quota.clone())),
    };
    let trigger = HttpTrigger::prepare_with(&app, context.engine, &resources, options, |_| {})
        .map_err(|e| shown(&e))?;
    trigger.set_workers(context.serve.workers);
    trigger.set_body_idle_timeout(context.serve.body_idle_timeout);
    Ok(AppRuntime {
        version,
        routes: trigger.route_table(),
        trigger,
        failures,
        quota: context.quota.clone(),
        _resources: resources,
    })
}

/// Admits a request the app sends itself through the app's quota gate, refusing at once as
/// for a client's request.
fn chain_admission(
    app_name: &str,
    quota: Arc<arc_swap::ArcSwap<crate::quotas::QuotaGate>>,
) -> kite_http::ChainAdmission {
    let app_name: Arc<str> = app_name.into();
    Arc::new(move || {
        let gate = quota.load();
        gate.admit()
            .map(|admitted| Box::new(admitted) as Box<dyn std::any::Any + Send>)
            .map_err(|refusal| refusal.describe(&app_name, &gate.quotas))
    })
}

/// Points every component at its Wasm in the bundle (downloads were done by the client).
fn use_bundled_sources(
    app: &mut App,
    version_dir: &Path,
    index: &BundleIndex,
) -> anyhow::Result<()> {
    for component in &mut app.components {
        let digest = index.components.get(&component.id).ok_or_else(|| {
            anyhow::anyhow!(
                "component `{}` has no Wasm in the bundle; deploy with `kite deploy`, which packs it",
                component.id
            )
        })?;
        component.source = version_dir.join(component_path(digest));
        component.download = None;
        component.build = None;
    }
    Ok(())
}

/// A component's limits are lowered to what the host allows an app: its memory quota, the
/// host's longest deadline, and the default budget for host memory held per instance.
fn apply_memory_quota(app: &mut App, quotas: &Quotas, max_timeout: std::time::Duration) {
    let host_memory = kite_app::Limits::default().host_memory;
    for component in &mut app.components {
        if let Some(quota) = quotas.memory {
            component.limits.memory = component.limits.memory.min(quota);
        }
        component.limits.timeout = component.limits.timeout.min(max_timeout);
        component.limits.host_memory = component.limits.host_memory.min(host_memory);
    }
}

/// The most components one app may have on a shared host.
const MAX_COMPONENTS: usize = 64;
/// The most distinct store labels (key-value and SQLite together) one app may use.
const MAX_STORE_LABELS: usize = 16;

/// What an app may make the host open or copy at load, bounded: components, store files, and
/// files granted one by one (copied for each component, at most the bundle quota in all).
fn check_app_size(app: &App, quotas: &Quotas) -> anyhow::Result<()> {
    if app.components.len() > MAX_COMPONENTS {
        anyhow::bail!(
            "the app has {} components; an app on a shared host may have at most {MAX_COMPONENTS}",
            app.components.len()
        );
    }
    let labels: std::collections::BTreeSet<&String> = app
        .components
        .iter()
        .flat_map(|c| c.key_value_stores.iter().chain(&c.sqlite_databases))
        .collect();
    if labels.len() > MAX_STORE_LABELS {
        anyhow::bail!(
            "the app uses {} store labels; an app on a shared host may use at most {MAX_STORE_LABELS}",
            labels.len()
        );
    }
    let copied: u64 = app
        .components
        .iter()
        .flat_map(|c| &c.copied_files)
        .map(|f| std::fs::metadata(&f.source).map_or(0, |m| m.len()))
        .sum();
    let allowed = quotas.bundle_size.unwrap_or(u64::MAX);
    if copied > allowed {
        anyhow::bail!(
            "the files granted one by one come to {copied} bytes across the app's components, more than its bundle quota of {allowed} bytes; grant their directories instead"
        );
    }
    Ok(())
}

/// A deployed version's files are shared, read-only blobs: an app keeps what it writes in
/// its stores instead.
fn refuse_writable_directories(app: &App) -> anyhow::Result<()> {
    for component in &app.components {
        if let Some(mount) = component.files.iter().find(|m| m.writable) {
            anyhow::bail!(
                "component `{}`: the directory {} is granted writable; apps on a shared host cannot write to their files (keep data in a key-value store or SQLite database)",
                component.id,
                mount.destination
            );
        }
    }
    Ok(())
}

/// Every store label the app uses, as an SQLite file of its own under `data_dir` (at most
/// `max_bytes` each): two apps with the same labels never share a file.
fn stores_in(app: &App, data_dir: &Path, max_bytes: Option<u64>) -> anyhow::Result<RuntimeConfig> {
    let mut config = RuntimeConfig {
        max_store_bytes: max_bytes,
        ..RuntimeConfig::default()
    };
    for component in &app.components {
        // Here a label becomes a file name: letters, digits, `-` and `_` only.
        let labels = component
            .key_value_stores
            .iter()
            .chain(&component.sqlite_databases);
        for label in labels {
            let plain = label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if label.is_empty() || !plain {
                anyhow::bail!(
                    "component `{}`: invalid store label {label:?}",
                    component.id
                );
            }
        }
        for label in &component.key_value_stores {
            config.key_value_stores.insert(
                label.clone(),
                StoreBackend::Sqlite {
                    path: data_dir.join("key_value").join(format!("{label}.sqlite")),
                },
            );
        }
        for label in &component.sqlite_databases {
            config.sqlite_databases.insert(
                label.clone(),
                DatabaseBackend::Sqlite {
                    path: data_dir.join("sqlite").join(format!("{label}.db")),
                },
            );
        }
    }
    Ok(config)
}

/// The app's variables from the values set through the API and the manifest's defaults.
fn resolve_variables(
    app_name: &str,
    app: &App,
    values: &BTreeMap<String, String>,
) -> anyhow::Result<ResolvedVariables> {
    for decl in &app.variables {
        if decl.default.is_none() && !values.contains_key(&decl.name) {
            anyhow::bail!(
                "variable `{}` is required and has no value: set it with `kite apps vars set {app_name} {}=VALUE`",
                decl.name,
                decl.name
            );
        }
    }
    let declared: Vec<(String, String)> = values
        .iter()
        .filter(|(name, _)| app.variables.iter().any(|d| &d.name == *name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let sources = VariableSources::load(declared, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    ResolvedVariables::resolve(&app.variables, &sources).map_err(|e| anyhow::anyhow!("{e}"))
}
