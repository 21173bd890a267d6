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
    /// Kept alive with the trigger: the stores and the service-chaining dispatch.
    _resources: AppResources,
}

/// What loading a version needs besides its files.
pub struct LoadContext<'a> {
    pub engine: &'a KiteEngine,
    /// Networks the operator keeps every app away from.
    pub blocked_networks: &'a [kite_app::BlockedNetwork],
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
    apply_memory_quota(&mut app, context.quotas);
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
        _resources: resources,
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

/// A component's memory limit is lowered to the app's quota.
fn apply_memory_quota(app: &mut App, quotas: &Quotas) {
    if let Some(quota) = quotas.memory {
        for component in &mut app.components {
            component.limits.memory = component.limits.memory.min(quota);
        }
    }
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
