//! The spin.toml front door for version 1 manifests (`spin_manifest_version = "1"` or
//! `spin_version = "1"`): `[[component]]` tables, each with its own `[component.trigger]`.

use super::checks::SeenRoutes;
use super::kite::RawHttpSettings;
use super::source::ManifestSource;
use super::spin_common::{
    component, is_kebab_id, route, variable_declarations, RawSpinBuild, RawSpinComponent,
    RawSpinVariable, SpinRoute,
};
use crate::model::{App, Executor, ManifestFormat, Route, Target, TriggerSpec};
use crate::ManifestError;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[allow(dead_code)]
    #[serde(alias = "spin_version")]
    spin_manifest_version: String,
    name: String,
    version: Option<String>,
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    trigger: Spanned<RawAppTrigger>,
    #[serde(default)]
    variables: BTreeMap<String, Spanned<RawSpinVariable>>,
    #[serde(default)]
    component: Vec<Spanned<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppTrigger {
    #[serde(rename = "type")]
    kind: String,
    base: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    id: Spanned<String>,
    source: Spanned<toml::Value>,
    trigger: RawComponentTrigger,
    description: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    exclude_files: Vec<Spanned<String>>,
    #[serde(default)]
    allowed_http_hosts: Vec<Spanned<String>>,
    /// Spin grants a version 1 component every Redis, MySQL and PostgreSQL host when this
    /// is absent; Kite grants nothing that is not written (docs/spin.md).
    allowed_outbound_hosts: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    key_value_stores: Vec<Spanned<String>>,
    #[serde(default)]
    sqlite_databases: Vec<Spanned<String>>,
    #[serde(default)]
    ai_models: Vec<Spanned<String>>,
    build: Option<RawSpinBuild>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponentTrigger {
    route: Spanned<toml::Value>,
    executor: Option<Spanned<toml::Value>>,
}

pub(crate) fn load(source: &ManifestSource<'_>) -> Result<App, ManifestError> {
    let raw: RawManifest = source.parse()?;
    let trigger = raw.trigger.get_ref();
    if trigger.kind != "http" {
        return Err(source.error_at(
            raw.trigger.span(),
            "trigger.type",
            format!(
                "Kite serves HTTP triggers only; `{}` triggers are not supported",
                trigger.kind
            ),
        ));
    }
    if trigger.base.as_deref().is_some_and(|base| base != "/") {
        return Err(source.error_at(
            raw.trigger.span(),
            "trigger.base",
            "this application uses the deprecated trigger `base`; prepend the base to each component's route and remove `base` (Spin refuses it too)",
        ));
    }
    let variables = variable_declarations(source, raw.variables)?;
    let mut components = Vec::with_capacity(raw.component.len());
    let mut triggers = Vec::with_capacity(raw.component.len());
    let mut seen = SeenRoutes::default();
    for (i, spanned) in raw.component.into_iter().enumerate() {
        let key = format!("component[{i}]");
        let raw = spanned.into_inner();
        let id = component_id(source, &key, &raw.id)?;
        if let Some(earlier) = components
            .iter()
            .position(|c: &crate::ComponentSpec| c.id == id)
        {
            return Err(source.error_at(
                raw.id.span(),
                &format!("{key}.id"),
                format!("component id {id:?} is also the id of component[{earlier}]; each component needs its own"),
            ));
        }
        let executor = match &raw.trigger.executor {
            Some(executor) => {
                super::checks::executor(source, &format!("{key}.trigger.executor"), executor)?
            }
            None => Executor::WasiHttp,
        };
        let route_key = format!("{key}.trigger.route");
        let route = match route(source, &route_key, &raw.trigger.route)? {
            SpinRoute::Path(pattern) => {
                source.unique_route(&route_key, &pattern, raw.trigger.route.span(), &mut seen)?;
                Route::Path(pattern)
            }
            SpinRoute::Private => Route::Private,
        };
        let converted = RawSpinComponent {
            source: raw.source,
            description: raw.description,
            variables: raw.config,
            environment: raw.environment,
            files: raw.files,
            exclude_files: raw.exclude_files,
            allowed_http_hosts: raw.allowed_http_hosts,
            allowed_outbound_hosts: raw.allowed_outbound_hosts.unwrap_or_default(),
            key_value_stores: raw.key_value_stores,
            sqlite_databases: raw.sqlite_databases,
            ai_models: raw.ai_models,
            targets: None,
            build: raw.build,
            tool: BTreeMap::new(),
            dependencies_inherit_configuration: None,
            dependencies: None,
            profile: None,
        };
        components.push(component(source, &key, id.clone(), converted, &variables)?);
        triggers.push(TriggerSpec {
            route,
            target: Target::Component(id),
            executor,
        });
    }
    Ok(App {
        name: raw.name,
        version: raw.version,
        description: raw.description,
        authors: raw.authors,
        format: ManifestFormat::SpinV1,
        manifest_path: source.file.to_path_buf(),
        dir: source.dir.to_path_buf(),
        components,
        triggers,
        variables,
        http: RawHttpSettings::apply(None, ManifestFormat::SpinV1),
    })
}

/// A version 1 id as Spin converts it: kept if it is kebab-case, else with `_` turned into
/// `-` and lowercased (`my_component` becomes `my-component`).
fn component_id(
    source: &ManifestSource<'_>,
    key: &str,
    id: &Spanned<String>,
) -> Result<String, ManifestError> {
    let written = id.get_ref();
    if is_kebab_id(written) {
        return Ok(written.clone());
    }
    let converted = written.replace('_', "-").to_lowercase();
    if is_kebab_id(&converted) {
        return Ok(converted);
    }
    Err(source.error_at(
        id.span(),
        &format!("{key}.id"),
        format!("component id {written:?} must be kebab-case: words of letters and digits, each starting with a letter, joined by `-`"),
    ))
}
