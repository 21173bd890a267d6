//! The control plane of `kite serve`: deploy, roll back, remove and configure apps, one
//! change per app at a time, each checked completely before it touches the registry or
//! traffic.

use crate::bundle::{read_index, unpack, BlobStore, BundleLimits};
use crate::host::{Host, LiveApp};
use crate::quotas::{QuotaGate, Quotas};
use crate::registry::{is_valid_app_name, AppRecord, Registry, VersionRecord};
use crate::runtime::{load_version, AppRuntime, LoadContext};
use kite_engine::KiteEngine;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The most instances one app may have built ahead (of its share of the host's budget).
const AHEAD_PER_APP: usize = 4;

/// How the operator set the host up.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    pub state_dir: PathBuf,
    /// Apps answer on `<name>.<domain>`.
    pub domain: String,
    /// The apps' listener's port, for the URLs shown to users (`None`: port 80).
    pub public_port: Option<u16>,
    /// Quotas for apps that set none.
    pub default_quotas: Quotas,
    /// The host's limit on an instance's linear memory.
    pub max_memory: u64,
    /// Files one bundle may hold.
    pub max_bundle_files: usize,
    /// The longest deadline a request may have; components asking for more get this.
    pub max_timeout: std::time::Duration,
    /// Networks no app's outbound connection may reach (whatever its manifest allows).
    pub blocked_networks: Vec<kite_app::BlockedNetwork>,
    /// Most instances built ahead at once across all apps (the rest of the instance slots
    /// are for requests).
    pub instances_ahead: usize,
    /// How long an app may go without requests before its instances built ahead are
    /// dropped (whole seconds, at least one).
    pub idle_after: std::time::Duration,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    NotFound(String),
    /// The request or the bundle is wrong; nothing changed.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

type Result<T> = std::result::Result<T, PlatformError>;

/// What the API shows of an app.
#[derive(Debug, Clone, Serialize)]
pub struct AppView {
    pub name: String,
    pub url: String,
    pub hosts: Vec<String>,
    /// `serving`, `not deployed`, or `failed: <why>`.
    pub status: String,
    pub current_version: Option<u32>,
    pub versions: Vec<VersionView>,
    pub routes: Vec<RouteView>,
    /// As set, and as in effect with the host's defaults.
    pub quotas: Quotas,
    pub effective_quotas: Quotas,
    /// Names only: values are never shown.
    pub variables: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub version: u32,
    pub bundle_sha256: String,
    pub deployed_at: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    pub route: String,
    pub component: String,
}

pub struct Platform {
    registry: Registry,
    blobs: BlobStore,
    engine: KiteEngine,
    pub host: Arc<Host>,
    settings: PlatformSettings,
    /// Held while a change is recorded and made live (and for a removal): brief, one at a
    /// time across the host.
    changes: Mutex<()>,
    /// One per app, held for the whole of a change to it, unpacking and compiling included:
    /// changes to one app are serial, while other apps' changes go on.
    app_locks: Mutex<std::collections::HashMap<String, Arc<Mutex<()>>>>,
    /// Apps whose current version could not be loaded at start, with why.
    failed: Mutex<BTreeMap<String, String>>,
    /// Which app each host name belongs to, live or not (from every record).
    claimed: Mutex<BTreeMap<String, String>>,
    ahead_budget: Arc<kite_http::AheadBudget>,
    linkers: Arc<kite_http::Linkers>,
}

impl Platform {
    pub fn open(settings: PlatformSettings, engine: KiteEngine) -> anyhow::Result<Self> {
        let registry = Registry::open(&settings.state_dir)?;
        registry.sweep()?;
        let blobs = BlobStore::open(&settings.state_dir.join("blobs"))?;
        let linkers = kite_http::Linkers::new(&engine)?;
        let host = Arc::new(Host::new(engine.decommits().cloned(), settings.idle_after));
        Ok(Platform {
            registry,
            blobs,
            engine,
            host,
            ahead_budget: kite_http::AheadBudget::new(settings.instances_ahead, AHEAD_PER_APP),
            linkers,
            settings,
            changes: Mutex::new(()),
            app_locks: Mutex::default(),
            failed: Mutex::default(),
            claimed: Mutex::default(),
        })
    }

    /// Instances built ahead now, across all apps.
    pub fn instances_ahead(&self) -> usize {
        self.ahead_budget.held()
    }

    pub fn engine(&self) -> &KiteEngine {
        &self.engine
    }

    pub fn settings(&self) -> &PlatformSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock serialising changes to `name`.
    fn app_lock(&self, name: &str) -> Arc<Mutex<()>> {
        self.app_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Starts serving every app deployed before; returns how many serve. An app that no
    /// longer loads is reported and left out.
    pub fn restore(&self) -> anyhow::Result<usize> {
        let _change = self.lock();
        let mut serving = 0;
        let records = self.registry.list()?;
        for record in &records {
            self.claim_hosts(record);
        }
        for record in records {
            let Some(current) = record.current else {
                continue;
            };
            match self.load(&record, current, None) {
                Ok(runtime) => {
                    self.go_live(&record, runtime);
                    serving += 1;
                }
                Err(e) => {
                    tracing::error!(app = %record.name, "version {current} does not load: {e}");
                    self.failed_apps()
                        .insert(record.name.clone(), e.to_string());
                }
            }
        }
        Ok(serving)
    }

    fn failed_apps(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most bytes of bundle `name` may upload.
    pub fn bundle_limit(&self, name: &str) -> u64 {
        let quotas = self
            .registry
            .get(name)
            .ok()
            .flatten()
            .map(|r| r.quotas)
            .unwrap_or_default();
        self.effective(&quotas).bundle_size.unwrap_or(u64::MAX)
    }

    fn effective(&self, quotas: &Quotas) -> Quotas {
        quotas.effective(&self.settings.default_quotas, self.settings.max_memory)
    }

    /// Deploys the bundle in `upload` as `name`'s next version and makes it current.
    /// `hosts`, when given, replaces the host names the app answers on besides its own.
    pub fn deploy(
        &self,
        name: &str,
        upload: &Path,
        bundle_sha256: &str,
        hosts: Option<Vec<String>>,
    ) -> Result<AppView> {
        check_name(name)?;
        let app_lock = self.app_lock(name);
        let _app = app_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self.registry.get_or_new(name)?;
        if let Some(hosts) = hosts {
            record.hosts = check_hosts(hosts)?;
        }
        self.check_hosts_free(&record)?;
        let number = record.next_version();
        let dir = self.registry.version_dir(name, number);
        // The blobs this deploy writes stay pinned (safe from cleaning) until it is
        // recorded or given up.
        let mut pinned = Vec::new();
        let result = self.unpack_and_load(&record, number, &dir, upload, &mut pinned);
        let result = result.and_then(|loaded| {
            // Another app may have claimed a host while this one compiled.
            let change = self.lock();
            self.check_hosts_free(&record)?;
            Ok((loaded, change))
        });
        let ((runtime, unpacked), _change) = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                self.blobs.unpin(&pinned);
                // Blobs only this failed version brought.
                let _change = self.lock();
                self.collect_blobs();
                return Err(e);
            }
        };
        self.blobs.unpin(&pinned);
        record.versions.push(VersionRecord {
            number,
            bundle_sha256: bundle_sha256.to_string(),
            deployed_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
            size: unpacked.size,
            blobs: unpacked.blobs,
        });
        record.current = Some(number);
        let pruned = self.registry.prune_versions(&mut record);
        if let Err(e) = self.registry.save(&record) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        self.claim_hosts(&record);
        if !pruned.is_empty() {
            self.registry.delete_versions(name, &pruned)?;
            self.collect_blobs();
        }
        self.go_live(&record, runtime);
        tracing::info!(app = %name, "version {number} deployed");
        self.view(name)
    }

    fn unpack_and_load(
        &self,
        record: &AppRecord,
        number: u32,
        dir: &Path,
        upload: &Path,
        pinned: &mut Vec<String>,
    ) -> Result<(AppRuntime, crate::bundle::Unpacked)> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(anyhow::Error::from)?;
        }
        std::fs::create_dir_all(dir).map_err(anyhow::Error::from)?;
        let limits = BundleLimits {
            max_unpacked: self
                .effective(&record.quotas)
                .bundle_size
                .unwrap_or(u64::MAX),
            max_files: self.settings.max_bundle_files,
        };
        let file = std::fs::File::open(upload).map_err(anyhow::Error::from)?;
        let unpacked = unpack(
            std::io::BufReader::new(file),
            limits,
            &self.blobs,
            dir,
            pinned,
        )
        .map_err(|e| PlatformError::Invalid(format!("{e:#}")))?;
        let runtime = self.load(record, number, Some(&unpacked.index))?;
        Ok((runtime, unpacked))
    }

    /// Loads version `number` of `record`'s app with its current variables and quotas.
    fn load(
        &self,
        record: &AppRecord,
        number: u32,
        index: Option<&crate::bundle::BundleIndex>,
    ) -> Result<AppRuntime> {
        let dir = self.registry.version_dir(&record.name, number);
        let index = match index {
            Some(index) => index.clone(),
            None => read_index(&dir)?,
        };
        let variables = self.registry.variables(&record.name)?;
        let quotas = self.effective(&record.quotas);
        let serve = self.host.serve_options();
        let data_dir = self.registry.data_dir(&record.name);
        let failures = self
            .host
            .app(&record.name)
            .map(|app| app.failures.clone())
            .unwrap_or_default();
        let context = LoadContext {
            blocked_networks: &self.settings.blocked_networks,
            max_timeout: self.settings.max_timeout,
            engine: &self.engine,
            quotas: &quotas,
            variables: &variables,
            data_dir: &data_dir,
            serve: &serve,
            failures,
            ahead_budget: self.ahead_budget.clone(),
            linkers: self.linkers.clone(),
            quota: self
                .host
                .app(&record.name)
                .map(|app| app.quota_cell())
                .unwrap_or_else(|| {
                    Arc::new(arc_swap::ArcSwap::from_pointee(QuotaGate::new(quotas)))
                }),
        };
        load_version(&record.name, number, &dir, &index, &context)
            .map_err(|e| PlatformError::Invalid(format!("{e:#}")))
    }

    /// Routes the app's hosts to `runtime`, replacing any version serving before.
    fn go_live(&self, record: &AppRecord, runtime: AppRuntime) {
        let quotas = self.effective(&record.quotas);
        let hosts = self.hosts_of(record);
        match self.host.app(&record.name) {
            Some(app) => {
                app.activate(runtime);
                // The gate in use keeps its places and tokens unless the quotas changed.
                if app.quota().quotas != quotas {
                    app.set_quota(QuotaGate::new(quotas));
                }
                self.host.insert(app, hosts);
            }
            None => {
                let app = Arc::new(LiveApp::new(&record.name, runtime, QuotaGate::new(quotas)));
                self.host.insert(app, hosts);
            }
        }
        self.failed_apps().remove(&record.name);
    }

    fn hosts_of(&self, record: &AppRecord) -> Vec<String> {
        let mut hosts = vec![format!("{}.{}", record.name, self.settings.domain)];
        hosts.extend(record.hosts.iter().cloned());
        hosts.dedup();
        hosts
    }

    fn claimed(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.claimed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `record`'s hosts are its app's (and no others are). Names under the
    /// domain are only ever their own app's, whatever an older record says.
    fn claim_hosts(&self, record: &AppRecord) {
        let domain_suffix = format!(".{}", self.settings.domain);
        let own = format!("{}{domain_suffix}", record.name);
        let hosts: Vec<String> = self
            .hosts_of(record)
            .into_iter()
            .filter(|host| *host == own || !host.ends_with(&domain_suffix))
            .collect();
        let mut claimed = self.claimed();
        claimed.retain(|host, owner| *owner != record.name || hosts.contains(host));
        for host in hosts {
            claimed.insert(host, record.name.clone());
        }
    }

    /// Names under the host's domain belong to the app of that name; any other host name
    /// belongs to the first app that claims it, deployed or not.
    fn check_hosts_free(&self, record: &AppRecord) -> Result<()> {
        let domain = &self.settings.domain;
        for host in &record.hosts {
            if host == domain || host.ends_with(&format!(".{domain}")) {
                return Err(PlatformError::Invalid(format!(
                    "host {host:?} is under the host's domain {domain:?}, where every app has its own name; choose a host name outside it"
                )));
            }
        }
        let claimed = self.claimed();
        for host in self.hosts_of(record) {
            if let Some(owner) = claimed.get(&host).filter(|owner| **owner != record.name) {
                return Err(PlatformError::Conflict(format!(
                    "host {host:?} already belongs to app `{owner}`"
                )));
            }
        }
        Ok(())
    }

    /// Makes the version before the current one current again.
    pub fn rollback(&self, name: &str) -> Result<AppView> {
        let app_lock = self.app_lock(name);
        let _app = app_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self.record(name)?;
        let previous = record.previous_version().ok_or_else(|| {
            PlatformError::Invalid(format!(
                "app `{name}` has no earlier version to roll back to"
            ))
        })?;
        let runtime = self.load(&record, previous, None)?;
        record.current = Some(previous);
        let _change = self.lock();
        self.registry.save(&record)?;
        self.go_live(&record, runtime);
        tracing::info!(app = %name, "rolled back to version {previous}");
        self.view(name)
    }

    /// Loads the current version again (with the variables and quotas set now).
    pub fn redeploy(&self, name: &str) -> Result<AppView> {
        let app_lock = self.app_lock(name);
        let _app = app_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.reload(name)?;
        self.view(name)
    }

    /// Loads the current version again and makes it live; the caller holds the app's lock.
    fn reload(&self, name: &str) -> Result<()> {
        let record = self.record(name)?;
        if let Some(current) = record.current {
            let runtime = self.load(&record, current, None)?;
            let _change = self.lock();
            self.go_live(&record, runtime);
        }
        Ok(())
    }

    /// Removes the app, its versions and its data.
    pub fn remove(&self, name: &str) -> Result<()> {
        let app_lock = self.app_lock(name);
        let _app = app_lock.lock().unwrap_or_else(|p| p.into_inner());
        let _change = self.lock();
        self.record(name)?;
        self.host.remove(name);
        self.failed_apps().remove(name);
        self.claimed().retain(|_, owner| owner != name);
        self.registry.remove(name)?;
        self.collect_blobs();
        tracing::info!(app = %name, "removed");
        Ok(())
    }

    /// Sets (a value) or unsets (`None`) variables. A deployed app must still load with
    /// them, or nothing changes.
    pub fn set_variables(
        &self,
        name: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<AppView> {
        check_name(name)?;
        for variable in changes.keys() {
            if !kite_app::is_valid_variable_name(variable) {
                return Err(PlatformError::Invalid(format!(
                    "invalid variable name {variable:?}: lowercase letters, digits and `_`, starting with a letter"
                )));
            }
        }
        let app_lock = self.app_lock(name);
        let _app = app_lock.lock().unwrap_or_else(|p| p.into_inner());
        let record = match self.registry.get(name)? {
            Some(record) => record,
            None => {
                let record = AppRecord::new(name);
                self.registry.save(&record)?;
                record
            }
        };
        let before = self.registry.variables(name)?;
        let mut after = before.clone();
        for (variable, value) in changes {
            match value {
                Some(value) => after.insert(variable, value),
                None => after.remove(&variable),
            };
        }
        self.registry.set_variables(name, &after)?;
        if record.current.is_some() {
            if let Err(e) = self.reload(name) {
                self.registry.set_variables(name, &before)?;
                return Err(e);
            }
        }
        self.view(name)
    }

    /// Changes the app's quotas: each field given is set, or unset (`null`: the host's
    /// default applies again). A deployed app takes them at once; if it no longer loads
    /// with them, nothing changes.
    pub fn set_quotas(
        &self,
        name: &str,
        changes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<AppView> {
        check_name(name)?;
        let app_lock = self.app_lock(name);
        let _app = app_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self.registry.get_or_new(name)?;
        let before = self.effective(&record.quotas);
        record
            .quotas
            .apply(changes)
            .map_err(PlatformError::Invalid)?;
        let after = self.effective(&record.quotas);
        let reloaded = match (self.host.app(name), record.current) {
            // Memory limits and store caps are fixed when a version is loaded.
            (Some(_), Some(current))
                if (after.memory, after.store_size) != (before.memory, before.store_size) =>
            {
                Some(self.load(&record, current, None)?)
            }
            _ => None,
        };
        let _change = self.lock();
        self.registry.save(&record)?;
        match (reloaded, self.host.app(name)) {
            (Some(runtime), _) => self.go_live(&record, runtime),
            // The gate in use keeps its places and tokens unless its quotas changed.
            (None, Some(app)) if app.quota().quotas != after => {
                app.set_quota(QuotaGate::new(after))
            }
            _ => {}
        }
        self.view(name)
    }

    fn record(&self, name: &str) -> Result<AppRecord> {
        self.registry
            .get(name)?
            .ok_or_else(|| PlatformError::NotFound(format!("no app named `{name}`")))
    }

    /// Deletes blobs no kept version links.
    fn collect_blobs(&self) {
        let result = self
            .registry
            .blobs_in_use()
            .and_then(|keep| Ok(self.blobs.retain(&keep)?));
        if let Err(e) = result {
            tracing::warn!("cleaning unused bundle files: {e:#}");
        }
    }

    pub fn list(&self) -> Result<Vec<AppView>> {
        let names: Vec<String> = self.registry.list()?.into_iter().map(|r| r.name).collect();
        names.iter().map(|name| self.view(name)).collect()
    }

    pub fn view(&self, name: &str) -> Result<AppView> {
        let record = self.record(name)?;
        let live = self.host.app(name);
        let status = match (&live, record.current) {
            (Some(_), _) => "serving".to_string(),
            (None, None) => "not deployed".to_string(),
            (None, Some(_)) => match self.failed_apps().get(name) {
                Some(why) => format!("failed: {why}"),
                None => "stopped".to_string(),
            },
        };
        let routes = live
            .map(|app| {
                app.runtime()
                    .routes
                    .iter()
                    .map(|(route, component)| RouteView {
                        route: route.clone(),
                        component: component.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let hosts = self.hosts_of(&record);
        Ok(AppView {
            url: self.url(&hosts[0]),
            name: record.name.clone(),
            hosts,
            status,
            current_version: record.current,
            versions: record
                .versions
                .iter()
                .map(|v| VersionView {
                    version: v.number,
                    bundle_sha256: v.bundle_sha256.clone(),
                    deployed_at: v.deployed_at.clone(),
                    size: v.size,
                })
                .collect(),
            routes,
            effective_quotas: self.effective(&record.quotas),
            quotas: record.quotas,
            variables: self.registry.variables(name)?.into_keys().collect(),
        })
    }

    fn url(&self, host: &str) -> String {
        match self.settings.public_port {
            None | Some(80) => format!("http://{host}/"),
            Some(port) => format!("http://{host}:{port}/"),
        }
    }
}

fn check_name(name: &str) -> Result<()> {
    if is_valid_app_name(name) {
        Ok(())
    } else {
        Err(PlatformError::Invalid(format!(
            "invalid app name {name:?}: up to 63 lowercase letters, digits and `-`, not starting or ending with `-`"
        )))
    }
}

/// Host names as given, lowercased and checked.
fn check_hosts(hosts: Vec<String>) -> Result<Vec<String>> {
    hosts
        .into_iter()
        .map(|host| {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            let valid = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if valid {
                Ok(host)
            } else {
                Err(PlatformError::Invalid(format!(
                    "invalid host name {host:?}"
                )))
            }
        })
        .collect()
}
