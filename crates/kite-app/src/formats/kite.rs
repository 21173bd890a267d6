//! The kite.toml front door: the format as serde sees it (strict: unknown keys are errors;
//! spanned where a check points back at a value) and its lowering into an [`App`].

use super::checks::{executor, is_valid_id, RawVariable, SeenRoutes};
use super::source::ManifestSource;
use crate::model::{
    App, BuildSpec, ComponentSpec, Executor, HttpSettings, Limits, ManifestFormat, Route, Target,
    TriggerSpec,
};
use crate::units::{duration_serde, size_serde};
use crate::{ManifestError, VariableDecl};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use toml::Spanned;

const SUPPORTED_MANIFEST_VERSION: i64 = 1;
const MIN_MEMORY: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    pub manifest_version: Spanned<i64>,
    pub app: RawAppInfo,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub component: BTreeMap<String, RawComponent>,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<RawVariable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppInfo {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    pub http: Option<RawHttpSettings>,
}

/// `[app.http]`, also read from a spin.toml's `[application.tool.kite.http]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpSettings {
    pub request_id_header: Option<bool>,
    pub spin_headers: Option<bool>,
}

impl RawHttpSettings {
    pub fn apply(settings: Option<RawHttpSettings>, format: ManifestFormat) -> HttpSettings {
        let defaults = HttpSettings::defaults_for(format);
        let Some(raw) = settings else {
            return defaults;
        };
        HttpSettings {
            request_id_header: raw.request_id_header.unwrap_or(defaults.request_id_header),
            spin_headers: raw.spin_headers.unwrap_or(defaults.spin_headers),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    /// Required unless the route is private.
    pub path: Option<Spanned<String>>,
    /// Reachable only by the app's own components (`http://<component>.spin.internal`).
    pub private: Option<Spanned<bool>>,
    pub component: Spanned<String>,
    /// How the component is run on this route; the component's own `executor` otherwise.
    pub executor: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    pub source: Spanned<String>,
    pub build: Option<RawBuild>,
    #[serde(default)]
    pub files: Vec<RawFileMount>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub key_value_stores: Vec<Spanned<String>>,
    #[serde(default)]
    pub sqlite_databases: Vec<Spanned<String>>,
    /// How the component is run on routes that do not say.
    pub executor: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    pub command: String,
    pub workdir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileMount {
    pub source: Spanned<String>,
    pub destination: Spanned<String>,
    #[serde(default)]
    pub writable: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default, deserialize_with = "size_serde::deserialize")]
    pub memory: Option<u64>,
    #[serde(default, deserialize_with = "duration_serde::deserialize")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "size_serde::deserialize")]
    pub max_request_body: Option<u64>,
    pub max_concurrency: Option<Spanned<i64>>,
    #[serde(default, deserialize_with = "size_serde::deserialize")]
    pub host_memory: Option<u64>,
}

/// Loads a kite.toml already read into `source`.
pub(crate) fn load(source: &ManifestSource<'_>) -> Result<App, ManifestError> {
    let raw: RawManifest = source.parse()?;
    if *raw.manifest_version.get_ref() != SUPPORTED_MANIFEST_VERSION {
        return Err(source.error_at(
            raw.manifest_version.span(),
            "manifest_version",
            format!(
                "unsupported manifest version {}; this Kite reads version {SUPPORTED_MANIFEST_VERSION}",
                raw.manifest_version.get_ref()
            ),
        ));
    }
    let variables = source.variable_declarations(raw.variables)?;
    let mut components = Vec::with_capacity(raw.component.len());
    let mut executors = HashMap::new();
    for (id, mut component) in raw.component {
        if let Some(raw) = component.executor.take() {
            let key = format!("component.{id}.executor");
            executors.insert(id.clone(), executor(source, &key, &raw)?);
        }
        components.push(self::component(source, id, component, &variables)?);
    }
    let triggers = routes(source, raw.route, &components, &executors)?;
    Ok(App {
        name: raw.app.name,
        version: raw.app.version,
        description: raw.app.description,
        authors: raw.app.authors,
        format: ManifestFormat::Kite,
        manifest_path: source.file.to_path_buf(),
        dir: source.dir.to_path_buf(),
        components,
        triggers,
        variables,
        http: RawHttpSettings::apply(raw.app.http, ManifestFormat::Kite),
    })
}

fn component(
    source: &ManifestSource<'_>,
    id: String,
    raw: RawComponent,
    declared: &[VariableDecl],
) -> Result<ComponentSpec, ManifestError> {
    let key = |field: &str| format!("component.{id}.{field}");
    if !is_valid_id(&id) {
        return Err(source.error_at(
            raw.source.span(),
            &key(""),
            format!(
                "component id {id:?} may only contain lowercase letters, digits, `-` and `_`, and must start with a letter"
            ),
        ));
    }
    let build = raw.build.map(|b| BuildSpec {
        command: b.command,
        workdir: b.workdir.map_or_else(
            || source.dir.to_path_buf(),
            |w| source.dir.join(w.get_ref()),
        ),
    });
    let mut files = Vec::with_capacity(raw.files.len());
    for (i, mount) in raw.files.into_iter().enumerate() {
        files.push(source.directory_grant(
            &key(&format!("files[{i}]")),
            &mount.source,
            &mount.destination,
            mount.writable,
        )?);
    }
    source.environment_names(&key("environment"), raw.environment.keys())?;
    let limits = limits(source, &key("limits"), raw.limits)?;
    let variables = source.component_variables(&key("variables"), raw.variables, declared)?;
    let (allowed_outbound_hosts, outbound_templates) = source.outbound_rules(
        &key("allowed_outbound_hosts"),
        &raw.allowed_outbound_hosts,
        declared,
    )?;
    let mut store_grant_locations = Vec::new();
    let key_value_stores = source.store_labels(
        &key("key_value_stores"),
        raw.key_value_stores,
        &mut store_grant_locations,
    )?;
    let sqlite_databases = source.store_labels(
        &key("sqlite_databases"),
        raw.sqlite_databases,
        &mut store_grant_locations,
    )?;
    Ok(ComponentSpec {
        variables,
        key_value_stores,
        sqlite_databases,
        store_grant_locations,
        source_location: Some(source.location(raw.source.span())),
        source: source.dir.join(raw.source.get_ref()),
        download: None,
        id,
        build,
        files,
        copied_files: Vec::new(),
        environment: raw.environment.into_iter().collect(),
        allowed_outbound_hosts,
        outbound_templates,
        limits,
    })
}

/// A `limits` table (kite.toml's `[component.<id>.limits]`, or a spin.toml component's
/// `[component.<id>.tool.kite.limits]`) over the defaults.
pub(crate) fn limits(
    source: &ManifestSource<'_>,
    key: &str,
    raw: RawLimits,
) -> Result<Limits, ManifestError> {
    let max_concurrency = match raw.max_concurrency {
        None => None,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(value) if value > 0 => Some(value),
            _ => {
                return Err(source.error_at(
                    n.span(),
                    &format!("{key}.max_concurrency"),
                    format!("must be a whole number of at least 1, got {}", n.get_ref()),
                ))
            }
        },
    };
    let defaults = Limits::default();
    let limits = Limits {
        memory: raw.memory.unwrap_or(defaults.memory),
        timeout: raw.timeout.unwrap_or(defaults.timeout),
        max_request_body: raw.max_request_body.unwrap_or(defaults.max_request_body),
        max_concurrency,
        host_memory: raw.host_memory.unwrap_or(defaults.host_memory),
    };
    for (name, bytes) in [
        ("memory", limits.memory),
        ("host_memory", limits.host_memory),
    ] {
        if bytes < MIN_MEMORY {
            return Err(source.error_at(
                None,
                &format!("{key}.{name}"),
                format!("{name} limit must be at least 1MiB, got {bytes} bytes"),
            ));
        }
    }
    if limits.timeout > MAX_TIMEOUT {
        return Err(source.error_at(
            None,
            &format!("{key}.timeout"),
            format!(
                "timeout may be at most {} hours, got {}s",
                MAX_TIMEOUT.as_secs() / 3600,
                limits.timeout.as_secs()
            ),
        ));
    }
    Ok(limits)
}

/// The longest deadline a request may have.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

fn routes(
    source: &ManifestSource<'_>,
    raw: Vec<RawRoute>,
    components: &[ComponentSpec],
    component_executors: &HashMap<String, Executor>,
) -> Result<Vec<TriggerSpec>, ManifestError> {
    let known: Vec<&str> = components.iter().map(|c| c.id.as_str()).collect();
    let mut seen = SeenRoutes::default();
    let mut triggers = Vec::with_capacity(raw.len());
    for (i, route) in raw.into_iter().enumerate() {
        let key = format!("route[{i}]");
        let private = route.private.as_ref().is_some_and(|p| *p.get_ref());
        let route_kind = match (&route.path, private) {
            (Some(path), false) => {
                Route::Path(source.route_pattern(&format!("{key}.path"), path, &mut seen)?)
            }
            (None, true) => Route::Private,
            (Some(path), true) => {
                return Err(source.error_at(
                    path.span(),
                    &format!("{key}.path"),
                    "a private route has no path: it is reached only as `http://<component>.spin.internal` from the app's own components; remove `path` or `private`".to_string(),
                ))
            }
            (None, false) => {
                return Err(source.error_at(
                    route.component.span(),
                    &key,
                    "a route needs a `path` (or `private = true`, to be reached only by the app's own components)".to_string(),
                ))
            }
        };
        let route_text = route
            .path
            .as_ref()
            .map_or("(private)", |path| path.get_ref().as_str());
        source.known_component(
            &format!("{key}.component"),
            route_text,
            &route.component,
            &known,
            "[component.{}] table",
        )?;
        let executor = match &route.executor {
            Some(raw) => executor(source, &format!("{key}.executor"), raw)?,
            None => component_executors
                .get(route.component.get_ref())
                .cloned()
                .unwrap_or_default(),
        };
        triggers.push(TriggerSpec {
            route: route_kind,
            target: Target::Component(route.component.into_inner()),
            executor,
        });
    }
    Ok(triggers)
}
