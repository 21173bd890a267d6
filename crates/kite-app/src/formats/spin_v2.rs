//! The spin.toml front door for `spin_manifest_version = 2`: Spin's documented schema, with
//! Spin's defaults and naming, lowered into the App model with file:line:key errors.

use super::checks::SeenRoutes;
use super::kite::RawHttpSettings;
use super::source::ManifestSource;
use super::spin_common::{
    check_component_id, component, is_kebab_id, route, variable_declarations, RawSpinComponent,
    RawSpinVariable, SpinRoute,
};
use crate::model::{App, Executor, ManifestFormat, Route, StaticResponse, Target, TriggerSpec};
use crate::ManifestError;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[allow(dead_code)]
    spin_manifest_version: i64,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, Spanned<RawSpinVariable>>,
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, Spanned<RawSpinComponent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    version: Option<String>,
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[allow(dead_code)]
    targets: Option<toml::Value>,
    /// Not spanned, like `tool`: toml cannot span a table only deeper headers create.
    #[serde(default)]
    trigger: BTreeMap<String, toml::Value>,
    #[serde(default)]
    tool: BTreeMap<String, toml::Value>,
}

/// `[[trigger.<type>]]`: Kite serves HTTP; the other types Spin knows are named so that an
/// app using them gets a clear error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<Spanned<RawHttpTrigger>>,
    redis: Option<Spanned<toml::Value>>,
    cron: Option<Spanned<toml::Value>>,
    mqtt: Option<Spanned<toml::Value>>,
    sqs: Option<Spanned<toml::Value>>,
    command: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    id: Option<String>,
    route: Spanned<toml::Value>,
    component: Option<Spanned<toml::Value>>,
    static_response: Option<Spanned<RawStaticResponse>>,
    executor: Option<Spanned<toml::Value>>,
    components: Option<Spanned<toml::Value>>,
    dependencies: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticResponse {
    status_code: Option<Spanned<u16>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
}

/// `[application.tool.kite]`: Kite's own settings for a Spin app (Spin ignores `tool`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKiteAppTool {
    http: Option<RawHttpSettings>,
}

pub(crate) fn load(source: &ManifestSource<'_>) -> Result<App, ManifestError> {
    let raw: RawManifest = source.parse()?;
    check_application_triggers(source, &raw.application.trigger)?;
    for (name, value) in [
        ("redis", &raw.trigger.redis),
        ("cron", &raw.trigger.cron),
        ("mqtt", &raw.trigger.mqtt),
        ("sqs", &raw.trigger.sqs),
        ("command", &raw.trigger.command),
    ] {
        if let Some(value) = value {
            return Err(source.error_at(
                value.span(),
                &format!("trigger.{name}"),
                format!("Kite serves HTTP triggers only; `{name}` triggers are not supported"),
            ));
        }
    }
    let http = app_settings(source, &raw.application.tool)?;
    let variables = variable_declarations(source, raw.variables)?;
    let mut components = Vec::with_capacity(raw.component.len());
    for (id, spanned) in raw.component {
        let key = format!("component.{id}");
        check_component_id(source, &key, spanned.span(), &id)?;
        components.push(component(
            source,
            &key,
            id,
            spanned.into_inner(),
            &variables,
        )?);
    }
    let mut triggers = Vec::with_capacity(raw.trigger.http.len());
    let mut ids = TriggerIds::new(&raw.trigger.http, components.iter().map(|c| c.id.clone()));
    let mut seen = SeenRoutes::default();
    for (i, spanned) in raw.trigger.http.into_iter().enumerate() {
        let key = format!("trigger.http[{i}]");
        let span = spanned.span();
        let trigger = spanned.into_inner();
        for (name, value) in [
            ("components", &trigger.components),
            ("dependencies", &trigger.dependencies),
        ] {
            if let Some(value) = value {
                return Err(source.error_at(
                    value.span(),
                    &format!("{key}.{name}"),
                    "trigger-level component composition (middleware) is not supported by Kite yet",
                ));
            }
        }
        let executor = match &trigger.executor {
            Some(raw) => super::checks::executor(source, &format!("{key}.executor"), raw)?,
            None => Executor::WasiHttp,
        };
        let route_key = format!("{key}.route");
        let route = match route(source, &route_key, &trigger.route)? {
            SpinRoute::Path(pattern) => {
                source.unique_route(&route_key, &pattern, trigger.route.span(), &mut seen)?;
                Route::Path(pattern)
            }
            SpinRoute::Private => Route::Private,
        };
        let target = match (trigger.component, trigger.static_response) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(source.error_at(
                    span,
                    &key,
                    "a trigger names either a `component` or a `static_response`, not both and not neither",
                ))
            }
            (None, Some(response)) => Target::Static(static_response(response.into_inner())),
            (Some(reference), None) => {
                let component_key = format!("{key}.component");
                match reference.get_ref() {
                    toml::Value::String(id) => {
                        if !components.iter().any(|c| &c.id == id) {
                            let known: Vec<&str> =
                                components.iter().map(|c| c.id.as_str()).collect();
                            source.known_component(
                                &component_key,
                                &route_text(&route),
                                &Spanned::new(reference.span(), id.clone()),
                                &known,
                                "[component.{}] table",
                            )?;
                        }
                        Target::Component(id.clone())
                    }
                    toml::Value::Table(_) => {
                        let id = ids.inline_component_id(i);
                        let text = toml::to_string(reference.get_ref()).map_err(|_| {
                            source.error_at(reference.span(), &component_key, "not a component table")
                        })?;
                        let part = source.part(&text, reference.span(), &component_key);
                        let raw: RawSpinComponent = part.parse()?;
                        components.push(component(&part, &component_key, id.clone(), raw, &variables)?);
                        Target::Component(id)
                    }
                    _ => {
                        return Err(source.error_at(
                            reference.span(),
                            &component_key,
                            "expected a component id or an inline component table",
                        ))
                    }
                }
            }
        };
        triggers.push(TriggerSpec {
            route,
            target,
            executor,
        });
    }
    Ok(App {
        name: raw.application.name,
        version: raw.application.version,
        description: raw.application.description,
        authors: raw.application.authors,
        format: ManifestFormat::SpinV2,
        manifest_path: source.file.to_path_buf(),
        dir: source.dir.to_path_buf(),
        components,
        triggers,
        variables,
        http,
    })
}

fn route_text(route: &Route) -> String {
    match route {
        Route::Path(pattern) => pattern.as_str().to_string(),
        Route::Private => "{ private = true }".to_string(),
    }
}

fn static_response(raw: RawStaticResponse) -> StaticResponse {
    StaticResponse {
        status: raw.status_code.map_or(200, |s| s.into_inner()),
        headers: raw.headers.into_iter().collect(),
        body: raw.body.unwrap_or_default().into_bytes(),
    }
}

/// `[application.trigger.http]` may only hold `base = "/"`: Spin refuses any other base.
fn check_application_triggers(
    source: &ManifestSource<'_>,
    triggers: &BTreeMap<String, toml::Value>,
) -> Result<(), ManifestError> {
    let Some(http) = triggers.get("http") else {
        return Ok(());
    };
    let key = "application.trigger.http";
    let table = http
        .as_table()
        .ok_or_else(|| source.error_at(None, key, "expected a table"))?;
    if let Some(other) = table.keys().find(|k| *k != "base") {
        return Err(source.error_at(
            None,
            &format!("{key}.{other}"),
            "unknown setting; the http trigger takes only `base`",
        ));
    }
    match table.get("base") {
        None => Ok(()),
        Some(toml::Value::String(base)) if base == "/" => Ok(()),
        Some(_) => Err(source.error_at(
            base_span(source),
            &format!("{key}.base"),
            "this application uses the deprecated trigger `base`; prepend the base to each [[trigger.http]] route and remove `base` (Spin refuses it too)",
        )),
    }
}

fn app_settings(
    source: &ManifestSource<'_>,
    tools: &BTreeMap<String, toml::Value>,
) -> Result<crate::HttpSettings, ManifestError> {
    let Some(tool) = tools.get("kite") else {
        return Ok(RawHttpSettings::apply(None, ManifestFormat::SpinV2));
    };
    let key = "application.tool.kite";
    let text = toml::to_string(tool)
        .map_err(|_| source.error_at(None, key, "must be a table of Kite settings"))?;
    let header = line_starting(source.text, |line| {
        line.starts_with("[application.tool.kite")
    });
    let settings: RawKiteAppTool = source.part(&text, header.unwrap_or(0..0), key).parse()?;
    Ok(RawHttpSettings::apply(
        settings.http,
        ManifestFormat::SpinV2,
    ))
}

/// Spin's names for triggers without an `id` and for inline components: a trigger is
/// `<component>-http-trigger` or `http-trigger<N>`, its inline component
/// `<trigger id>-component` or `inline-component<N>`.
struct TriggerIds {
    trigger_ids: Vec<String>,
    taken: HashSet<String>,
}

impl TriggerIds {
    fn new(triggers: &[Spanned<RawHttpTrigger>], components: impl Iterator<Item = String>) -> Self {
        let mut used: HashSet<String> = triggers
            .iter()
            .filter_map(|t| t.get_ref().id.clone())
            .collect();
        let mut counter = 0;
        let trigger_ids = triggers
            .iter()
            .map(|t| {
                let trigger = t.get_ref();
                if let Some(id) = &trigger.id {
                    return id.clone();
                }
                let by_component = trigger
                    .component
                    .as_ref()
                    .and_then(|c| c.get_ref().as_str())
                    .map(|c| format!("{c}-http-trigger"));
                let id = match by_component {
                    Some(id) if !used.contains(&id) => id,
                    _ => loop {
                        counter += 1;
                        let id = format!("http-trigger{counter}");
                        if !used.contains(&id) {
                            break id;
                        }
                    },
                };
                used.insert(id.clone());
                id
            })
            .collect();
        TriggerIds {
            trigger_ids,
            taken: components.collect(),
        }
    }

    fn inline_component_id(&mut self, trigger: usize) -> String {
        let candidate = format!("{}-component", self.trigger_ids[trigger]);
        let id = if is_kebab_id(&candidate) && !self.taken.contains(&candidate) {
            candidate
        } else {
            (1..)
                .map(|n| format!("inline-component{n}"))
                .find(|id| !self.taken.contains(id))
                .unwrap_or_default()
        };
        self.taken.insert(id.clone());
        id
    }
}

/// Where `base` is written, for its error (the table holding it cannot be spanned).
fn base_span(source: &ManifestSource<'_>) -> Option<std::ops::Range<usize>> {
    line_starting(source.text, |line| {
        line.strip_prefix("base")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

/// The first line (as a byte range) whose text, leading blanks removed, satisfies `found`.
fn line_starting(text: &str, found: impl Fn(&str) -> bool) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if found(trimmed) {
            let start = offset + (line.len() - trimmed.len());
            return Some(start..start + trimmed.trim_end().len());
        }
        offset += line.len();
    }
    None
}
