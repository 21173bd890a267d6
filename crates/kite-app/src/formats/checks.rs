//! Checks every manifest format applies the same way: ids, variables and their templates,
//! store labels, directory grants, environment names, duplicate routes and executors.

use super::source::ManifestSource;
use crate::model::{Executor, FileMount, OutboundTemplate, WagiSettings};
use crate::OutboundRule;
use crate::{
    is_valid_variable_name, Location, ManifestError, RoutePattern, Template, VariableDecl,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Component as PathPart, Path};
use toml::Spanned;

/// `[variables.<name>]` as kite.toml and spin.toml (v1 and v2) all write it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

/// Component ids: lowercase letters, digits, `-` and `_`, starting with a letter.
pub(crate) fn is_valid_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Routes seen so far, by the form in which two routes that match the same paths are equal.
#[derive(Default)]
pub(crate) struct SeenRoutes(HashMap<String, (String, Range<usize>)>);

impl ManifestSource<'_> {
    pub fn variable_declarations(
        &self,
        raw: BTreeMap<String, Spanned<RawVariable>>,
    ) -> Result<Vec<VariableDecl>, ManifestError> {
        let mut declarations = Vec::with_capacity(raw.len());
        for (name, spanned) in raw {
            let span = spanned.span();
            let key = format!("variables.{name}");
            let var = spanned.into_inner();
            if !is_valid_variable_name(&name) {
                return Err(self.error_at(
                    span,
                    &key,
                    format!("variable name {name:?} may only contain lowercase letters, digits and `_`, and must start with a letter"),
                ));
            }
            match (&var.default, var.required) {
                (Some(_), true) => {
                    return Err(self.error_at(
                        span,
                        &key,
                        "a variable is either `required = true` or has a `default`, not both",
                    ))
                }
                (None, false) => {
                    return Err(self.error_at(
                        span,
                        &key,
                        "give the variable a `default = \"...\"` or mark it `required = true`",
                    ))
                }
                _ => {}
            }
            declarations.push(VariableDecl {
                name,
                default: var.default,
                required: var.required,
                secret: var.secret,
            });
        }
        Ok(declarations)
    }

    /// A component's `variables` table: each value a template over declared app variables.
    pub fn component_variables(
        &self,
        key: &str,
        raw: BTreeMap<String, Spanned<String>>,
        declared: &[VariableDecl],
    ) -> Result<Vec<(String, Template)>, ManifestError> {
        let mut bindings = Vec::with_capacity(raw.len());
        for (name, text) in raw {
            let key = format!("{key}.{name}");
            if !is_valid_variable_name(&name) {
                return Err(self.error_at(
                    text.span(),
                    &key,
                    format!("variable name {name:?} may only contain lowercase letters, digits and `_`, and must start with a letter"),
                ));
            }
            let template =
                Template::parse(text.get_ref()).map_err(|e| self.error_at(text.span(), &key, e))?;
            if let Some(unknown) = template
                .references()
                .find(|r| !declared.iter().any(|d| d.name == *r))
            {
                return Err(self.error_at(
                    text.span(),
                    &key,
                    format!("refers to `{unknown}`, which is not declared; add `{unknown} = {{ default = \"...\" }}` under [variables]"),
                ));
            }
            bindings.push((name, template));
        }
        Ok(bindings)
    }

    /// Store grant labels, remembering where each was written so that a label without a
    /// backend can be reported against the manifest once the runtime configuration is known.
    pub fn store_labels(
        &self,
        key: &str,
        labels: Vec<Spanned<String>>,
        locations: &mut Vec<(String, Location)>,
    ) -> Result<Vec<String>, ManifestError> {
        let mut granted = Vec::with_capacity(labels.len());
        for (i, label) in labels.into_iter().enumerate() {
            let entry_key = format!("{key}[{i}]");
            if label.get_ref().is_empty() {
                return Err(self.error_at(
                    label.span(),
                    &entry_key,
                    "a store label cannot be empty",
                ));
            }
            locations.push((entry_key, self.location(label.span())));
            granted.push(label.into_inner());
        }
        Ok(granted)
    }

    pub fn environment_names<'n>(
        &self,
        key: &str,
        names: impl IntoIterator<Item = &'n String>,
    ) -> Result<(), ManifestError> {
        for name in names {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(self.error_at(
                    None,
                    key,
                    format!("invalid environment variable name {name:?}"),
                ));
            }
        }
        Ok(())
    }

    /// A host directory inside the app granted to the guest at an absolute `destination`.
    pub fn directory_grant(
        &self,
        key: &str,
        source: &Spanned<String>,
        destination: &Spanned<String>,
        writable: bool,
    ) -> Result<FileMount, ManifestError> {
        let source_key = format!("{key}.source");
        let relative = Path::new(source.get_ref());
        if relative.is_absolute() {
            return Err(self.error_at(
                source.span(),
                &source_key,
                format!(
                    "{:?} must be a path relative to the app directory",
                    source.get_ref()
                ),
            ));
        }
        let joined = self.dir.join(relative);
        let canonical = joined.canonicalize().map_err(|e| {
            self.error_at(
                source.span(),
                &source_key,
                format!("cannot use {}: {e}", joined.display()),
            )
        })?;
        let app_dir = self
            .dir
            .canonicalize()
            .unwrap_or_else(|_| self.dir.to_path_buf());
        if !canonical.starts_with(&app_dir) {
            return Err(self.error_at(
                source.span(),
                &source_key,
                format!(
                    "{:?} resolves to {}, outside the app directory {}; only files inside the app may be granted",
                    source.get_ref(),
                    canonical.display(),
                    app_dir.display()
                ),
            ));
        }
        if !canonical.is_dir() {
            return Err(self.error_at(
                source.span(),
                &source_key,
                format!(
                    "{} is not a directory; grant the directory that holds it",
                    canonical.display()
                ),
            ));
        }
        let guest_path = destination.get_ref();
        if !is_clean_guest_path(guest_path) {
            return Err(self.error_at(
                destination.span(),
                &format!("{key}.destination"),
                format!("destination {guest_path:?} must be an absolute guest path without `.` or `..`, e.g. \"/static\""),
            ));
        }
        Ok(FileMount {
            source: canonical,
            destination: guest_path.clone(),
            writable,
            location: Some(self.location(source.span())),
        })
    }

    /// Parses a route and refuses one that matches exactly the paths of an earlier one.
    pub fn route_pattern(
        &self,
        key: &str,
        route: &Spanned<String>,
        seen: &mut SeenRoutes,
    ) -> Result<RoutePattern, ManifestError> {
        let pattern = RoutePattern::parse(route.get_ref())
            .map_err(|e| self.error_at(route.span(), key, e))?;
        self.unique_route(key, &pattern, route.span(), seen)?;
        Ok(pattern)
    }

    /// Refuses a route (written at `span`) that matches exactly the paths of an earlier one.
    pub fn unique_route(
        &self,
        key: &str,
        pattern: &RoutePattern,
        span: Range<usize>,
        seen: &mut SeenRoutes,
    ) -> Result<(), ManifestError> {
        if let Some((other, earlier)) = seen.0.get(&pattern.canonical()) {
            let line = self.location(earlier.clone()).line;
            return Err(self.error_at(
                span,
                key,
                format!(
                    "route {:?} duplicates route {other:?} on line {line}; each path may be routed once",
                    pattern.as_str()
                ),
            ));
        }
        seen.0
            .insert(pattern.canonical(), (pattern.as_str().to_string(), span));
        Ok(())
    }

    /// Refuses a route target that names no component, listing the ones there are.
    pub fn known_component(
        &self,
        key: &str,
        route: &str,
        component: &Spanned<String>,
        known: &[&str],
        defined_as: &str,
    ) -> Result<(), ManifestError> {
        if known.contains(&component.get_ref().as_str()) {
            return Ok(());
        }
        Err(self.error_at(
            component.span(),
            key,
            format!(
                "route {route:?} names component {:?}, which is not defined (defined: {}); add a {}",
                component.get_ref(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") },
                defined_as.replace("{}", component.get_ref())
            ),
        ))
    }
}

impl ManifestSource<'_> {
    /// `allowed_outbound_hosts` (at `key`): rules, and templated entries to render once the
    /// app's variables are known. A template whose variables all have defaults is checked
    /// now with those defaults, as Spin does.
    pub fn outbound_rules(
        &self,
        key: &str,
        raw: &[Spanned<String>],
        declared: &[VariableDecl],
    ) -> Result<(Vec<OutboundRule>, Vec<OutboundTemplate>), ManifestError> {
        let (mut rules, mut templates) = (Vec::new(), Vec::new());
        for (i, entry) in raw.iter().enumerate() {
            let entry_key = format!("{key}[{i}]");
            let fail = |message: String| self.error_at(entry.span(), &entry_key, message);
            if !entry.get_ref().contains("{{") {
                rules.push(OutboundRule::parse(entry.get_ref()).map_err(fail)?);
                continue;
            }
            let template = Template::parse(entry.get_ref()).map_err(fail)?;
            let mut defaults = Vec::new();
            for name in template.references() {
                match declared.iter().find(|d| d.name == name) {
                    None => return Err(fail(format!(
                        "refers to `{name}`, which is not declared; add `{name} = {{ default = \"...\" }}` under [variables]"
                    ))),
                    Some(declaration) => defaults.push(declaration.default.clone()),
                }
            }
            if defaults.iter().all(Option::is_some) {
                let rendered = template.render_with(|name| {
                    declared
                        .iter()
                        .find(|d| d.name == name)
                        .and_then(|d| d.default.clone())
                        .unwrap_or_default()
                });
                if !rendered.trim().is_empty() {
                    OutboundRule::parse(rendered.trim()).map_err(|e| {
                        fail(format!(
                            "with the variables' defaults this is {rendered:?}: {e}"
                        ))
                    })?;
                }
            }
            templates.push(OutboundTemplate {
                template,
                key: entry_key,
            });
        }
        Ok((rules, templates))
    }
}

/// An absolute guest path made only of normal segments, e.g. `/static/img`.
pub(crate) fn is_clean_guest_path(path: &str) -> bool {
    let path = Path::new(path);
    path.is_absolute()
        && path
            .components()
            .all(|p| matches!(p, PathPart::RootDir | PathPart::Normal(_)))
}

/// `executor`: a wasi:http handler (`type = "wasi-http"`, Spin's `"spin"`, also `"http"`) is
/// the default;
/// `type = "wagi"` runs the component as a CGI program, with optional `argv` and
/// `entrypoint`.
pub(crate) fn executor(
    source: &ManifestSource<'_>,
    key: &str,
    raw: &Spanned<toml::Value>,
) -> Result<Executor, ManifestError> {
    let fail = |message: &str| source.error_at(raw.span(), key, message);
    let table = raw
        .get_ref()
        .as_table()
        .ok_or_else(|| fail("expected a table such as `{ type = \"spin\" }`"))?;
    let text = |name: &str| match table.get(name) {
        None => Ok(None),
        Some(toml::Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(fail(&format!("`{name}` must be a string"))),
    };
    match table.get("type").and_then(toml::Value::as_str) {
        Some("spin" | "http" | "wasi-http") if table.len() == 1 => Ok(Executor::WasiHttp),
        Some("spin" | "http" | "wasi-http") => Err(fail(
            "the wasi-http executor takes no settings besides `type`",
        )),
        Some("wagi") => {
            if let Some(unknown) = table
                .keys()
                .find(|k| !matches!(k.as_str(), "type" | "argv" | "entrypoint"))
            {
                return Err(fail(&format!(
                    "unknown setting `{unknown}`: the wagi executor takes `argv` and `entrypoint`"
                )));
            }
            let defaults = WagiSettings::default();
            let entrypoint = text("entrypoint")?.unwrap_or(defaults.entrypoint);
            if entrypoint.is_empty() {
                return Err(fail(
                    "`entrypoint` names an exported function; it cannot be empty",
                ));
            }
            Ok(Executor::Wagi(WagiSettings {
                argv: text("argv")?.unwrap_or(defaults.argv),
                entrypoint,
            }))
        }
        _ => Err(fail(
            "`type` must be \"wasi-http\" (also written \"spin\") or \"wagi\"",
        )),
    }
}
