//! What spin.toml versions 1 and 2 share: the component table, Spin's id rules, the
//! `allowed_http_hosts` conversion, executors and routes, lowered into the App model.

use super::checks::RawVariable;
use super::kite::{limits, RawLimits};
use super::source::ManifestSource;
use super::spin_files::copied_files;
use crate::model::{BuildSpec, ComponentSpec, Download, Limits};
use crate::{ManifestError, OutboundRule, RoutePattern, VariableDecl};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// A `[component.<id>]` table (version 2; version 1 components are converted into one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpinComponent {
    pub source: Spanned<toml::Value>,
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pub exclude_files: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_http_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub key_value_stores: Vec<Spanned<String>>,
    #[serde(default)]
    pub sqlite_databases: Vec<Spanned<String>>,
    #[serde(default)]
    pub ai_models: Vec<Spanned<String>>,
    /// Deployment targets: nothing for Kite to check.
    #[allow(dead_code)]
    pub targets: Option<toml::Value>,
    pub build: Option<RawSpinBuild>,
    /// Tools' own settings. Not spanned: toml cannot span a table that only deeper
    /// headers (`[component.x.tool.kite.limits]`) create.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Value>,
    #[allow(dead_code)]
    pub dependencies_inherit_configuration: Option<bool>,
    pub dependencies: Option<toml::Value>,
    /// `spin up --profile` overrides; Kite serves the base profile.
    #[allow(dead_code)]
    pub profile: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpinBuild {
    /// One command, or several run in order.
    pub command: Spanned<toml::Value>,
    pub workdir: Option<Spanned<String>>,
    /// `spin watch` globs; Kite has no watch mode, so they are only accepted.
    #[allow(dead_code)]
    #[serde(default)]
    pub watch: Vec<String>,
}

/// `[component.<id>.tool.kite]`: Kite's own settings for a Spin component.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKiteComponentTool {
    limits: Option<RawLimits>,
}

/// `[variables.<name>]` in a spin.toml, which may also describe the variable.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpinVariable {
    #[allow(dead_code)]
    pub description: Option<String>,
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

impl From<RawSpinVariable> for RawVariable {
    fn from(raw: RawSpinVariable) -> Self {
        RawVariable {
            default: raw.default,
            required: raw.required,
            secret: raw.secret,
        }
    }
}

pub(crate) fn variable_declarations(
    source: &ManifestSource<'_>,
    raw: BTreeMap<String, Spanned<RawSpinVariable>>,
) -> Result<Vec<VariableDecl>, ManifestError> {
    let converted = raw
        .into_iter()
        .map(|(name, spanned)| {
            let span = spanned.span();
            (name, Spanned::new(span, spanned.into_inner().into()))
        })
        .collect();
    source.variable_declarations(converted)
}

/// Spin's component ids: words of ASCII letters and digits, each starting with a letter and
/// all in one case, joined by `-` (`my-component`, `API-V2`).
pub(crate) fn is_kebab_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|word| {
            word.starts_with(|c: char| c.is_ascii_alphabetic())
                && word.chars().all(|c| c.is_ascii_alphanumeric())
                && (word.chars().all(|c| !c.is_ascii_uppercase())
                    || word.chars().all(|c| !c.is_ascii_lowercase()))
        })
}

pub(crate) fn check_component_id(
    source: &ManifestSource<'_>,
    key: &str,
    span: Range<usize>,
    id: &str,
) -> Result<(), ManifestError> {
    if is_kebab_id(id) {
        return Ok(());
    }
    Err(source.error_at(
        span,
        key,
        format!("component id {id:?} must be kebab-case: words of letters and digits, each starting with a letter, joined by `-` (e.g. \"my-component\")"),
    ))
}

/// Lowers one component (written at `key`, e.g. `component.api`) into the model.
pub(crate) fn component(
    source: &ManifestSource<'_>,
    key: &str,
    id: String,
    raw: RawSpinComponent,
    declared: &[VariableDecl],
) -> Result<ComponentSpec, ManifestError> {
    let field = |name: &str| format!("{key}.{name}");
    let (path, download) = component_source(source, &field("source"), &raw.source)?;
    if let Some(model) = raw.ai_models.first() {
        return Err(source.error_at(
            model.span(),
            &field("ai_models"),
            "Kite serves no AI models; remove `ai_models` (fermyon:spin/llm calls then report that the model is not supported)",
        ));
    }
    let has_dependencies = raw
        .dependencies
        .as_ref()
        .is_some_and(|d| d.as_table().is_none_or(|t| !t.is_empty()));
    if has_dependencies {
        return Err(source.error_at(
            raw.source.span(),
            &field("dependencies"),
            "component dependencies (composition) are not supported by Kite yet; compose the component beforehand (e.g. with `wac plug`)",
        ));
    }
    let build = match raw.build {
        None => None,
        Some(build) => Some(build_spec(source, &field("build"), build)?),
    };
    source.environment_names(&field("environment"), raw.environment.keys())?;
    let copied_files = copied_files(source, &field("files"), &raw.files, &raw.exclude_files)?;
    if raw.allowed_outbound_hosts.len() == 1
        && raw.allowed_outbound_hosts[0].get_ref() == "insecure:allow-all"
    {
        return Err(source.error_at(
            raw.allowed_outbound_hosts[0].span(),
            &field("allowed_outbound_hosts[0]"),
            "`insecure:allow-all` is not a rule; use \"*://*:*\" if you really mean every host",
        ));
    }
    let (mut allowed_outbound_hosts, outbound_templates) = source.outbound_rules(
        &field("allowed_outbound_hosts"),
        &raw.allowed_outbound_hosts,
        declared,
    )?;
    for (i, host) in raw.allowed_http_hosts.iter().enumerate() {
        let entry_key = format!("{key}.allowed_http_hosts[{i}]");
        for rule in allowed_http_host(host.get_ref())
            .map_err(|e| source.error_at(host.span(), &entry_key, e))?
        {
            allowed_outbound_hosts.push(
                OutboundRule::parse(&rule)
                    .map_err(|e| source.error_at(host.span(), &entry_key, e))?,
            );
        }
    }
    let limits = match raw.tool.get("kite") {
        None => Limits::default(),
        Some(tool) => {
            let tool_key = field("tool.kite");
            let text = toml::to_string(tool).map_err(|_| {
                source.error_at(
                    raw.source.span(),
                    &tool_key,
                    "must be a table of Kite settings",
                )
            })?;
            // Errors point at the component (its `source` line).
            let part = source.part(&text, raw.source.span(), &tool_key);
            let settings: RawKiteComponentTool = part.parse()?;
            match settings.limits {
                Some(raw) => limits(&part, &format!("{tool_key}.limits"), raw)?,
                None => Limits::default(),
            }
        }
    };
    let variables = source.component_variables(&field("variables"), raw.variables, declared)?;
    let mut store_grant_locations = Vec::new();
    let key_value_stores = source.store_labels(
        &field("key_value_stores"),
        raw.key_value_stores,
        &mut store_grant_locations,
    )?;
    let sqlite_databases = source.store_labels(
        &field("sqlite_databases"),
        raw.sqlite_databases,
        &mut store_grant_locations,
    )?;
    Ok(ComponentSpec {
        id,
        source: path,
        download,
        source_location: Some(source.location(raw.source.span())),
        build,
        files: Vec::new(),
        copied_files,
        environment: raw.environment.into_iter().collect(),
        allowed_outbound_hosts,
        outbound_templates,
        limits,
        variables,
        key_value_stores,
        sqlite_databases,
        store_grant_locations,
    })
}

/// `source = "path.wasm"` or `source = { url, digest = "sha256:..." }`.
fn component_source(
    source: &ManifestSource<'_>,
    key: &str,
    raw: &Spanned<toml::Value>,
) -> Result<(std::path::PathBuf, Option<Download>), ManifestError> {
    let fail = |message: String| source.error_at(raw.span(), key, message);
    match raw.get_ref() {
        toml::Value::String(path) => Ok((source.dir.join(path), None)),
        toml::Value::Table(table) if table.contains_key("url") => {
            if let Some(other) = table.keys().find(|k| *k != "url" && *k != "digest") {
                return Err(fail(format!("unknown key `{other}` in a `{{ url, digest }}` source")));
            }
            let url = table["url"].as_str().ok_or_else(|| fail("`url` must be a string".into()))?;
            let digest = table
                .get("digest")
                .and_then(toml::Value::as_str)
                .ok_or_else(|| fail("a `{ url }` source needs `digest = \"sha256:<hex>\"`".into()))?;
            let hex = digest
                .strip_prefix("sha256:")
                .filter(|hex| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    fail(format!("invalid `digest` {digest:?}: expected \"sha256:\" and 64 hex digits"))
                })?
                .to_ascii_lowercase();
            Ok((
                std::path::PathBuf::from(format!("sha256-{hex}.wasm")),
                Some(Download {
                    url: url.to_string(),
                    sha256: hex,
                }),
            ))
        }
        toml::Value::Table(table) if table.contains_key("package") => Err(fail(
            "registry sources (`{ registry, package, version }`) are not supported by Kite; download the component and give its path, or a `{ url, digest }` source".into(),
        )),
        _ => Err(fail(
            "expected a path (\"target/app.wasm\") or { url = \"https://...\", digest = \"sha256:...\" }".into(),
        )),
    }
}

fn build_spec(
    source: &ManifestSource<'_>,
    key: &str,
    raw: RawSpinBuild,
) -> Result<BuildSpec, ManifestError> {
    let fail = || {
        source.error_at(
            raw.command.span(),
            &format!("{key}.command"),
            "expected a command or a list of commands",
        )
    };
    let command = match raw.command.get_ref() {
        toml::Value::String(command) => command.clone(),
        toml::Value::Array(commands) => commands
            .iter()
            .map(|c| c.as_str().map(|c| format!("( {c} )")).ok_or_else(fail))
            .collect::<Result<Vec<_>, _>>()?
            .join(" && "),
        _ => return Err(fail()),
    };
    Ok(BuildSpec {
        command,
        workdir: raw.workdir.map_or_else(
            || source.dir.to_path_buf(),
            |w| source.dir.join(w.get_ref()),
        ),
    })
}

/// Converts one deprecated `allowed_http_hosts` entry into `allowed_outbound_hosts` rules,
/// as Spin does: `host[:port]` allows both http and https, `insecure:allow-all` any host.
pub(crate) fn allowed_http_host(entry: &str) -> Result<Vec<String>, String> {
    if entry == "insecure:allow-all" {
        return Ok(vec![
            "http://*:*".into(),
            "https://*:*".into(),
            "http://self".into(),
        ]);
    }
    if entry == "self" {
        return Ok(vec!["http://self".into()]);
    }
    let (schemes, rest): (&[&str], &str) = match entry.split_once("://") {
        Some(("http", rest)) => (&["http"], rest),
        Some(("https", rest)) => (&["https"], rest),
        Some(_) => return Err(format!("{entry:?} isn't a valid host or host:port string")),
        None => (&["http", "https"], entry),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        return Err(format!(
            "{entry:?} contains a path, should be host and optional port only"
        ));
    }
    if authority.is_empty() {
        return Err(format!("{entry:?} doesn't contain a host name"));
    }
    Ok(schemes
        .iter()
        .map(|scheme| format!("{scheme}://{authority}"))
        .collect())
}

/// A `route`: a path pattern (Spin accepts it without the leading `/`, and `/*` for a
/// wildcard tail), or `{ private = true }`.
pub(crate) enum SpinRoute {
    Path(RoutePattern),
    Private,
}

pub(crate) fn route(
    source: &ManifestSource<'_>,
    key: &str,
    raw: &Spanned<toml::Value>,
) -> Result<SpinRoute, ManifestError> {
    let fail = |message: String| source.error_at(raw.span(), key, message);
    match raw.get_ref() {
        toml::Value::String(text) => RoutePattern::parse_spin(text)
            .map(SpinRoute::Path)
            .map_err(fail),
        toml::Value::Table(table) => match (table.get("private"), table.len()) {
            (Some(toml::Value::Boolean(true)), 1) => Ok(SpinRoute::Private),
            _ => Err(fail(
                "route must be a string pattern or `{ private = true }`".into(),
            )),
        },
        _ => Err(fail(
            "route must be a string pattern or `{ private = true }`".into(),
        )),
    }
}
