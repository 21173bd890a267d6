//! Wagi's `modules.toml`: `[[module]]` entries, each a CGI program on a route. Each module
//! becomes one component and one trigger running it with the Wagi executor.

use super::checks::{is_valid_id, SeenRoutes};
use super::kite::RawHttpSettings;
use super::source::ManifestSource;
use crate::model::{
    App, ComponentSpec, Executor, Limits, ManifestFormat, Route, Target, TriggerSpec, WagiSettings,
};
use crate::ManifestError;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModules {
    /// Wagi's host name for `SERVER_NAME` when a request has no `Host`; Kite takes the
    /// request's own, so this is read and not needed.
    #[allow(dead_code)]
    default_host: Option<String>,
    #[serde(default)]
    module: Vec<Spanned<RawModule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    route: Spanned<String>,
    module: Spanned<String>,
    #[serde(default)]
    volumes: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    entrypoint: Option<Spanned<String>>,
    /// Hosts for Wagi's experimental outbound HTTP, which Kite refuses modules for; so
    /// there is nothing for the list to allow.
    #[serde(default)]
    #[allow(dead_code)]
    allowed_hosts: Vec<String>,
    http_max_concurrency: Option<Spanned<i64>>,
    argv: Option<String>,
}

/// Loads a modules.toml already read into `source`.
pub(crate) fn load(source: &ManifestSource<'_>) -> Result<App, ManifestError> {
    let raw: RawModules = source.parse()?;
    if raw.module.is_empty() {
        return Err(source.error_at(
            None,
            "module",
            "a modules.toml lists its programs as `[[module]]` tables; this one has none",
        ));
    }
    let mut components = Vec::with_capacity(raw.module.len());
    let mut triggers = Vec::with_capacity(raw.module.len());
    let mut seen = SeenRoutes::default();
    for (i, spanned) in raw.module.into_iter().enumerate() {
        let key = format!("module[{i}]");
        let module = spanned.into_inner();
        let pattern = source.route_pattern(&format!("{key}.route"), &module.route, &mut seen)?;
        let path = module_path(source, &key, &module.module)?;
        let id = component_id(&path, i, &components);
        let mut files = Vec::with_capacity(module.volumes.len());
        for (guest, host) in &module.volumes {
            let destination = Spanned::new(host.span(), guest.clone());
            // Wagi's volumes are read-write, as Wagi mounted them.
            files.push(source.directory_grant(
                &format!("{key}.volumes"),
                host,
                &destination,
                true,
            )?);
        }
        source.environment_names(&format!("{key}.environment"), module.environment.keys())?;
        let mut limits = Limits::default();
        if let Some(n) = &module.http_max_concurrency {
            limits.max_concurrency = match u32::try_from(*n.get_ref()) {
                Ok(value) if value > 0 => Some(value),
                _ => {
                    return Err(source.error_at(
                        n.span(),
                        &format!("{key}.http_max_concurrency"),
                        format!("must be a whole number of at least 1, got {}", n.get_ref()),
                    ))
                }
            };
        }
        let defaults = WagiSettings::default();
        let entrypoint = match module.entrypoint {
            Some(entry) if entry.get_ref().is_empty() => {
                return Err(source.error_at(
                    entry.span(),
                    &format!("{key}.entrypoint"),
                    "names an exported function; it cannot be empty",
                ))
            }
            Some(entry) => entry.into_inner(),
            None => defaults.entrypoint,
        };
        components.push(ComponentSpec {
            id: id.clone(),
            source_location: Some(source.location(module.module.span())),
            source: path,
            download: None,
            build: None,
            files,
            copied_files: Vec::new(),
            environment: module.environment.into_iter().collect(),
            allowed_outbound_hosts: Vec::new(),
            outbound_templates: Vec::new(),
            limits,
            variables: Vec::new(),
            key_value_stores: Vec::new(),
            sqlite_databases: Vec::new(),
            store_grant_locations: Vec::new(),
        });
        triggers.push(TriggerSpec {
            route: Route::Path(pattern),
            target: Target::Component(id),
            executor: Executor::Wagi(WagiSettings {
                argv: module.argv.unwrap_or(defaults.argv),
                entrypoint,
            }),
        });
    }
    Ok(App {
        name: source
            .dir
            .file_name()
            .map_or_else(|| "wagi".to_string(), |n| n.to_string_lossy().into_owned()),
        version: None,
        description: None,
        authors: Vec::new(),
        format: ManifestFormat::Wagi,
        manifest_path: source.file.to_path_buf(),
        dir: source.dir.to_path_buf(),
        components,
        triggers,
        variables: Vec::new(),
        http: RawHttpSettings::apply(None, ManifestFormat::Wagi),
    })
}

/// The module's file: a path (relative to the modules.toml) or a `file://` URL. Wagi's
/// `bindle:` and `oci:` references name registries Kite does not fetch from.
fn module_path(
    source: &ManifestSource<'_>,
    key: &str,
    module: &Spanned<String>,
) -> Result<std::path::PathBuf, ManifestError> {
    let text = module.get_ref();
    let fail = |message: String| source.error_at(module.span(), &format!("{key}.module"), message);
    if let Some(path) = text.strip_prefix("file://") {
        return Ok(source.dir.join(path));
    }
    if let Some((scheme, _)) = text.split_once(':') {
        if scheme.len() > 1
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Err(fail(format!(
                "{text:?} is a `{scheme}:` reference; Kite runs modules from files only: download it and name the .wasm file"
            )));
        }
    }
    Ok(source.dir.join(text))
}

/// A component id for the module at `path`: its file name made an id, numbered if taken.
fn component_id(path: &std::path::Path, index: usize, taken: &[ComponentSpec]) -> String {
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let base = if is_valid_id(&stem) {
        stem
    } else {
        format!("module-{index}")
    };
    let mut id = base.clone();
    let mut n = 2;
    while taken.iter().any(|c| c.id == id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}
