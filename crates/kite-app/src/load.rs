//! Reads a kite.toml, checks everything that can be checked before running anything,
//! and produces an [`App`]. Each mistake is reported with file, line and key.

use crate::file_grants::default_protected;
use crate::manifest::{RawComponent, RawManifest, RawVariable};
use crate::model::{App, BuildSpec, ComponentSpec, FileMount, Limits, RouteSpec};
use crate::{
    is_valid_variable_name, Location, ManifestError, RoutePattern, Template, VariableDecl,
};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Component as PathPart, Path, PathBuf};
use toml::Spanned;

pub const MANIFEST_FILE_NAME: &str = "kite.toml";
const SUPPORTED_MANIFEST_VERSION: i64 = 1;
const MIN_MEMORY: u64 = 1 << 20;

/// Loads the app at `path`: a manifest file, or a directory holding `kite.toml`.
pub fn load_app(path: &Path) -> Result<App, ManifestError> {
    let manifest_path = if path.is_dir() {
        path.join(MANIFEST_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (pass the app directory or manifest with `-f`, or create one with `kite new`)"
        } else {
            ""
        };
        ManifestError::new(
            &manifest_path,
            None,
            "",
            format!("cannot read manifest: {e}{hint}"),
        )
    })?;
    let manifest_path = std::path::absolute(&manifest_path).unwrap_or(manifest_path);
    let dir = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Loader {
        text: &text,
        file: &manifest_path,
        dir: &dir,
    }
    .load()
}

struct Loader<'a> {
    text: &'a str,
    file: &'a Path,
    dir: &'a Path,
}

impl Loader<'_> {
    fn load(&self) -> Result<App, ManifestError> {
        let raw = self.parse()?;
        if *raw.manifest_version.get_ref() != SUPPORTED_MANIFEST_VERSION {
            return Err(self.error_at(
                raw.manifest_version.span(),
                "manifest_version",
                format!(
                    "unsupported manifest version {}; this Kite reads version {SUPPORTED_MANIFEST_VERSION}",
                    raw.manifest_version.get_ref()
                ),
            ));
        }
        let variables = self.variables(raw.variables)?;
        let mut components = Vec::with_capacity(raw.component.len());
        for (id, component) in raw.component {
            components.push(self.component(id, component, &variables)?);
        }
        let routes = self.routes(raw.route, &components)?;
        let app = App {
            name: raw.app.name,
            version: raw.app.version,
            description: raw.app.description,
            manifest_path: self.file.to_path_buf(),
            dir: self.dir.to_path_buf(),
            components,
            routes,
            variables,
        };
        app.check_file_grants(&default_protected(&app))?;
        Ok(app)
    }

    fn variables(
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

    fn component_variables(
        &self,
        component: &str,
        raw: BTreeMap<String, Spanned<String>>,
        declared: &[VariableDecl],
    ) -> Result<Vec<(String, Template)>, ManifestError> {
        let mut bindings = Vec::with_capacity(raw.len());
        for (name, text) in raw {
            let key = format!("component.{component}.variables.{name}");
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

    fn parse(&self) -> Result<RawManifest, ManifestError> {
        let deserializer = toml::Deserializer::new(self.text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            let location = inner
                .span()
                .map(|span| Location::from_offset(self.text, span.start));
            ManifestError::new(self.file, location, key, inner.message().trim().to_string())
        })
    }

    fn component(
        &self,
        id: String,
        raw: RawComponent,
        declared: &[VariableDecl],
    ) -> Result<ComponentSpec, ManifestError> {
        let key = |field: &str| format!("component.{id}.{field}");
        if !is_valid_id(&id) {
            return Err(self.error_at(
                raw.source.span(),
                &key(""),
                format!(
                    "component id {id:?} may only contain lowercase letters, digits, `-` and `_`, and must start with a letter"
                ),
            ));
        }
        let source = self.dir.join(raw.source.get_ref());
        let build = raw.build.map(|b| BuildSpec {
            command: b.command,
            workdir: b
                .workdir
                .map_or_else(|| self.dir.to_path_buf(), |w| self.dir.join(w.get_ref())),
        });
        let mut files = Vec::with_capacity(raw.files.len());
        for (i, mount) in raw.files.into_iter().enumerate() {
            let mount_key = key(&format!("files[{i}]"));
            files.push(self.file_mount(&mount_key, mount)?);
        }
        for name in raw.environment.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(self.error_at(
                    None,
                    &key("environment"),
                    format!("invalid environment variable name {name:?}"),
                ));
            }
        }
        let max_concurrency = match raw.limits.max_concurrency {
            None => None,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(value) if value > 0 => Some(value),
                _ => {
                    return Err(self.error_at(
                        n.span(),
                        &key("limits.max_concurrency"),
                        format!("must be a whole number of at least 1, got {}", n.get_ref()),
                    ))
                }
            },
        };
        let defaults = Limits::default();
        let limits = Limits {
            memory: raw.limits.memory.unwrap_or(defaults.memory),
            timeout: raw.limits.timeout.unwrap_or(defaults.timeout),
            max_request_body: raw
                .limits
                .max_request_body
                .unwrap_or(defaults.max_request_body),
            max_concurrency,
            host_memory: raw.limits.host_memory.unwrap_or(defaults.host_memory),
        };
        for (name, bytes) in [
            ("memory", limits.memory),
            ("host_memory", limits.host_memory),
        ] {
            if bytes < MIN_MEMORY {
                return Err(self.error_at(
                    None,
                    &key(&format!("limits.{name}")),
                    format!("{name} limit must be at least 1MiB, got {bytes} bytes"),
                ));
            }
        }
        let variables = self.component_variables(&id, raw.variables, declared)?;
        let mut store_grant_locations = Vec::new();
        let key_value_stores = self.store_labels(
            &key("key_value_stores"),
            raw.key_value_stores,
            &mut store_grant_locations,
        )?;
        let sqlite_databases = self.store_labels(
            &key("sqlite_databases"),
            raw.sqlite_databases,
            &mut store_grant_locations,
        )?;
        Ok(ComponentSpec {
            variables,
            key_value_stores,
            sqlite_databases,
            store_grant_locations,
            source_location: Some(Location::from_offset(self.text, raw.source.span().start)),
            id,
            source,
            build,
            files,
            environment: raw.environment.into_iter().collect(),
            allowed_outbound_hosts: raw.allowed_outbound_hosts,
            limits,
        })
    }

    /// Store grant labels, remembering where each was written so that a label without a
    /// backend can be reported against the manifest once the runtime configuration is known.
    fn store_labels(
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
            locations.push((
                entry_key,
                Location::from_offset(self.text, label.span().start),
            ));
            granted.push(label.into_inner());
        }
        Ok(granted)
    }

    fn file_mount(
        &self,
        key: &str,
        raw: crate::manifest::RawFileMount,
    ) -> Result<FileMount, ManifestError> {
        let source_key = format!("{key}.source");
        let relative = Path::new(raw.source.get_ref());
        if relative.is_absolute() {
            return Err(self.error_at(
                raw.source.span(),
                &source_key,
                format!(
                    "{:?} must be a path relative to the app directory",
                    raw.source.get_ref()
                ),
            ));
        }
        let joined = self.dir.join(relative);
        let canonical = joined.canonicalize().map_err(|e| {
            self.error_at(
                raw.source.span(),
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
                raw.source.span(),
                &source_key,
                format!(
                    "{:?} resolves to {}, outside the app directory {}; only files inside the app may be granted",
                    raw.source.get_ref(),
                    canonical.display(),
                    app_dir.display()
                ),
            ));
        }
        if !canonical.is_dir() {
            return Err(self.error_at(
                raw.source.span(),
                &source_key,
                format!(
                    "{} is not a directory; grant the directory that holds it",
                    canonical.display()
                ),
            ));
        }
        let destination = raw.destination.get_ref();
        let dest_path = Path::new(destination);
        let clean = dest_path.is_absolute()
            && dest_path
                .components()
                .all(|p| matches!(p, PathPart::RootDir | PathPart::Normal(_)));
        if !clean {
            return Err(self.error_at(
                raw.destination.span(),
                &format!("{key}.destination"),
                format!("destination {destination:?} must be an absolute guest path without `.` or `..`, e.g. \"/static\""),
            ));
        }
        Ok(FileMount {
            source: canonical,
            destination: destination.clone(),
            writable: raw.writable,
            location: Some(Location::from_offset(self.text, raw.source.span().start)),
        })
    }

    fn routes(
        &self,
        raw: Vec<crate::manifest::RawRoute>,
        components: &[ComponentSpec],
    ) -> Result<Vec<RouteSpec>, ManifestError> {
        let mut seen: HashMap<String, (String, Range<usize>)> = HashMap::new();
        let mut routes = Vec::with_capacity(raw.len());
        for (i, route) in raw.into_iter().enumerate() {
            let key = format!("route[{i}]");
            let pattern = RoutePattern::parse(route.path.get_ref())
                .map_err(|e| self.error_at(route.path.span(), &format!("{key}.path"), e))?;
            if let Some((other, span)) = seen.get(&pattern.canonical()) {
                let line = Location::from_offset(self.text, span.start).line;
                return Err(self.error_at(
                    route.path.span(),
                    &format!("{key}.path"),
                    format!(
                        "route {:?} duplicates route {other:?} on line {line}; each path may be routed once",
                        route.path.get_ref()
                    ),
                ));
            }
            seen.insert(
                pattern.canonical(),
                (route.path.get_ref().clone(), route.path.span()),
            );
            if !components
                .iter()
                .any(|c| &c.id == route.component.get_ref())
            {
                let known: Vec<&str> = components.iter().map(|c| c.id.as_str()).collect();
                return Err(self.error_at(
                    route.component.span(),
                    &format!("{key}.component"),
                    format!(
                        "route {:?} names component {:?}, which is not defined (defined: {}); add a [component.{}] table",
                        route.path.get_ref(),
                        route.component.get_ref(),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") },
                        route.component.get_ref()
                    ),
                ));
            }
            routes.push(RouteSpec {
                pattern,
                component: route.component.into_inner(),
            });
        }
        Ok(routes)
    }

    fn error_at(
        &self,
        span: impl Into<Option<Range<usize>>>,
        key: &str,
        message: impl Into<String>,
    ) -> ManifestError {
        let location = span
            .into()
            .map(|s| Location::from_offset(self.text, s.start));
        ManifestError::new(self.file, location, key.trim_end_matches('.'), message)
    }
}

fn is_valid_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}
