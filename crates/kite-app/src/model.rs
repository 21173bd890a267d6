//! The App model: what every manifest front door loads into and what the engine,
//! triggers and capabilities read. Paths here are absolute and already validated.

use crate::{Location, ManifestError, OutboundRule, RoutePattern, Template, VariableDecl};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    pub authors: Vec<String>,
    /// Which front door read the manifest (for messages and format-specific defaults).
    pub format: ManifestFormat,
    /// The manifest this app was loaded from.
    pub manifest_path: PathBuf,
    /// The directory holding the manifest; relative paths in it are resolved from here.
    pub dir: PathBuf,
    pub components: Vec<ComponentSpec>,
    /// HTTP triggers in manifest order.
    pub triggers: Vec<TriggerSpec>,
    /// `[variables]`: the app's configuration values, resolved from providers at start-up.
    pub variables: Vec<VariableDecl>,
    pub http: HttpSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    Kite,
    /// `spin_manifest_version = 2`.
    SpinV2,
    /// `spin_manifest_version = "1"` (or `spin_version = "1"`).
    SpinV1,
    /// Wagi's `modules.toml`.
    Wagi,
}

impl ManifestFormat {
    pub fn is_spin(self) -> bool {
        matches!(self, ManifestFormat::SpinV1 | ManifestFormat::SpinV2)
    }

    /// Where the app's stores live unless `--state-dir` says otherwise, relative to the
    /// manifest's directory: Spin apps keep theirs where `spin up` does.
    pub fn default_state_dir(self) -> &'static str {
        if self.is_spin() {
            ".spin"
        } else {
            ".kite"
        }
    }
}

/// How the HTTP trigger dresses requests and responses for this app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// Responses carry `x-kite-request-id`.
    pub request_id_header: bool,
    /// Requests carry Spin's `spin-*` headers about their route (measured: about 0.5 µs
    /// per request, so kite.toml apps opt in).
    pub spin_headers: bool,
}

impl HttpSettings {
    pub fn defaults_for(format: ManifestFormat) -> Self {
        HttpSettings {
            request_id_header: !format.is_spin(),
            spin_headers: format.is_spin(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub id: String,
    /// Absolute path of the component's `.wasm`.
    pub source: PathBuf,
    /// Where `source` is downloaded from when it is not there yet (a Spin `{ url, digest }`
    /// source; `source` is then its place in the download cache).
    pub download: Option<Download>,
    pub(crate) source_location: Option<Location>,
    pub build: Option<BuildSpec>,
    pub files: Vec<FileMount>,
    /// Files copied, read-only, into a directory the guest sees at `/` (Spin's `files`).
    pub copied_files: Vec<CopiedFile>,
    pub environment: Vec<(String, String)>,
    pub allowed_outbound_hosts: Vec<OutboundRule>,
    /// `allowed_outbound_hosts` entries with `{{ variable }}` templates, added to
    /// `allowed_outbound_hosts` once variables are resolved ([`App::resolve_outbound_templates`]).
    pub outbound_templates: Vec<OutboundTemplate>,
    pub limits: Limits,
    /// The variables this component sees, as templates over app variables.
    pub variables: Vec<(String, Template)>,
    /// Labels of the key-value stores this component may open.
    pub key_value_stores: Vec<String>,
    /// Labels of the SQLite databases this component may open.
    pub sqlite_databases: Vec<String>,
    /// Manifest key and location of each store grant, key-value first, for error messages.
    pub(crate) store_grant_locations: Vec<(String, Location)>,
}

/// The key-value store and the SQLite database every app has without configuration:
/// SQLite files in its state directory.
pub const DEFAULT_STORE: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Run with `sh -c`.
    pub command: String,
    pub workdir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTemplate {
    pub template: Template,
    /// The manifest key it is written at, for messages.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub url: String,
    /// Lowercase hex SHA-256 the downloaded bytes must have.
    pub sha256: String,
}

/// A host file (canonical, inside the app directory) the guest sees at `guest_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedFile {
    pub source: PathBuf,
    /// Absolute, without `.` or `..`.
    pub guest_path: String,
    /// The manifest entry that named it, for error messages.
    pub(crate) key: String,
    pub(crate) location: Option<Location>,
}

/// A host directory the guest sees at `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    /// Canonical host path, inside the app directory.
    pub source: PathBuf,
    pub destination: String,
    pub writable: bool,
    /// Where the grant's `source` is written, for error messages.
    pub(crate) location: Option<Location>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory per instance, in bytes.
    pub memory: u64,
    /// Wall-clock deadline for one request.
    pub timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_request_body: u64,
    /// Most instances of this component alive at once; `None`: bounded only by the
    /// process-wide instance limit.
    pub max_concurrency: Option<u32>,
    /// Host memory one instance may make the host hold on its behalf (header fields,
    /// buffered body chunks, other host resources), in bytes.
    pub host_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 128 << 20,
            timeout: Duration::from_secs(30),
            max_request_body: 10 << 20,
            max_concurrency: None,
            host_memory: 64 << 20,
        }
    }
}

/// One HTTP trigger: which requests it takes and what answers them.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    pub route: Route,
    pub target: Target,
    /// How a component target is run (ignored for a static response).
    pub executor: Executor,
}

/// How a component is run for a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Executor {
    /// A `wasi:http` handler (Spin's `spin` executor).
    #[default]
    WasiHttp,
    /// A CGI program (Wagi): a WASI command given the request in its environment and on
    /// stdin, answering on stdout.
    Wagi(WagiSettings),
}

/// Wagi's settings for one route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WagiSettings {
    /// The program's arguments: a template in which `${SCRIPT_NAME}` (the request path)
    /// and `${ARGS}` (the query's `&`-separated parts) are replaced, then split on spaces.
    pub argv: String,
    /// The exported function run for a request.
    pub entrypoint: String,
}

impl Default for WagiSettings {
    fn default() -> Self {
        WagiSettings {
            argv: "${SCRIPT_NAME} ${ARGS}".into(),
            entrypoint: "_start".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Route {
    Path(RoutePattern),
    /// Reachable only from inside the app (service chaining), never from a client.
    Private,
}

#[derive(Debug, Clone)]
pub enum Target {
    /// A component id (validated).
    Component(String),
    Static(StaticResponse),
}

/// A response the trigger sends itself, without an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl App {
    pub fn component(&self, id: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.id == id)
    }

    /// Renders every component's templated outbound rules with the app's variables and adds
    /// them to its rules; a value that renders empty allows nothing (Spin drops it too).
    pub fn resolve_outbound_templates(
        &mut self,
        variables: &crate::ResolvedVariables,
    ) -> Result<(), String> {
        for component in &mut self.components {
            for entry in std::mem::take(&mut component.outbound_templates) {
                let value = variables.render(&entry.template);
                let text = value.expose().trim();
                if matches!(text, "" | "http://" | "https://") {
                    continue;
                }
                let rule = OutboundRule::parse(text).map_err(|e| {
                    let shown = if value.is_secret() { "(secret)" } else { text };
                    format!(
                        "`{}` renders as {shown:?}, which is not a rule: {e}",
                        entry.key
                    )
                })?;
                component.allowed_outbound_hosts.push(rule);
            }
        }
        Ok(())
    }

    /// The public routes and their targets, in manifest order.
    pub fn routes(&self) -> impl Iterator<Item = (&RoutePattern, &Target)> {
        self.triggers.iter().filter_map(|t| match &t.route {
            Route::Path(pattern) => Some((pattern, &t.target)),
            Route::Private => None,
        })
    }

    /// Every store a component is granted has a backend: `default`, or a label the runtime
    /// configuration defines.
    pub fn check_store_grants(
        &self,
        key_value_labels: &[String],
        sqlite_labels: &[String],
    ) -> Result<(), ManifestError> {
        for component in &self.components {
            let grants = component
                .key_value_stores
                .iter()
                .map(|l| (l, key_value_labels, "key-value store", "key_value_store"))
                .chain(
                    component
                        .sqlite_databases
                        .iter()
                        .map(|l| (l, sqlite_labels, "SQLite database", "sqlite_database")),
                );
            for ((label, available, what, table), (key, location)) in
                grants.zip(&component.store_grant_locations)
            {
                if label != DEFAULT_STORE && !available.contains(label) {
                    return Err(ManifestError::new(
                        &self.manifest_path,
                        Some(*location),
                        key.clone(),
                        format!(
                            "no backend is configured for {what} {label:?}; define [{table}.{label}] in a runtime configuration file (`kite up --runtime-config FILE`), or use \"default\""
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every component's `source` file exists. Checked after an optional build, before
    /// anything is compiled.
    pub fn check_sources(&self) -> Result<(), ManifestError> {
        for component in &self.components {
            if !component.source.is_file() {
                let hint = if component.build.is_some() {
                    " (run `kite build`, or `kite up --build`)"
                } else {
                    ""
                };
                return Err(ManifestError::new(
                    &self.manifest_path,
                    component.source_location,
                    format!("component.{}.source", component.id),
                    format!(
                        "source file {} does not exist{hint}",
                        component.source.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}
