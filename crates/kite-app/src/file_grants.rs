//! Checks on file grants as a whole: no writable grant overlaps another, and no grant or
//! copied file holds what the host keeps beside the app (state, secrets, manifest, cache).

use crate::model::{App, FileMount};
use crate::ManifestError;
use std::path::{Path, PathBuf};

/// Something the host keeps that no guest may see through a directory grant.
#[derive(Debug, Clone)]
pub struct ProtectedPath {
    /// What it is, for the message: "the state directory", "the dotenv file", ...
    pub what: String,
    pub path: PathBuf,
}

impl ProtectedPath {
    pub fn new(what: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        ProtectedPath {
            what: what.into(),
            path: path.into(),
        }
    }
}

/// What every app protects from its own manifest alone: the manifest, the default dotenv
/// file and the default state directory beside it.
pub(crate) fn default_protected(app: &App) -> Vec<ProtectedPath> {
    vec![
        ProtectedPath::new("the manifest", &app.manifest_path),
        ProtectedPath::new("the dotenv file", app.dir.join(".env")),
        ProtectedPath::new(
            "the state directory",
            app.dir.join(app.format.default_state_dir()),
        ),
    ]
}

impl App {
    /// Refuses a directory grant that holds one of `protected` (whether or not it exists
    /// yet), and two grants where one holds the other and either is writable: a guest
    /// could then change what another grant (or a later instance) sees.
    pub fn check_file_grants(&self, protected: &[ProtectedPath]) -> Result<(), ManifestError> {
        let grants: Vec<(&str, usize, &FileMount)> = self
            .components
            .iter()
            .flat_map(|c| {
                c.files
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (c.id.as_str(), i, m))
            })
            .collect();
        for &(component, index, mount) in &grants {
            for item in protected {
                let item_path = resolved(&item.path);
                if item_path.starts_with(&mount.source) || mount.source.starts_with(&item_path) {
                    return Err(self.grant_error(
                        component,
                        index,
                        mount,
                        format!(
                            "{} and {} ({}) overlap, and no guest may see the latter; grant a directory that holds only the guest's files",
                            mount.source.display(),
                            item.what,
                            item.path.display()
                        ),
                    ));
                }
            }
        }
        for copied in self.components.iter().flat_map(|c| &c.copied_files) {
            for item in protected {
                if copied.source.starts_with(resolved(&item.path)) {
                    return Err(ManifestError::new(
                        &self.manifest_path,
                        copied.location,
                        copied.key.clone(),
                        format!(
                            "{} is (or is inside) {} ({}), which no guest may see; leave it out with `exclude_files` or name only the guest's files",
                            copied.source.display(),
                            item.what,
                            item.path.display()
                        ),
                    ));
                }
            }
        }
        for &(component, index, mount) in grants.iter().filter(|(_, _, m)| m.writable) {
            if let Some((owner, what, path)) = self.code_under(&mount.source) {
                return Err(self.grant_error(
                    component,
                    index,
                    mount,
                    format!(
                        "{} is writable and holds component `{owner}`'s {what} ({}), which a guest could then change",
                        mount.source.display(),
                        path.display()
                    ),
                ));
            }
        }
        for (i, &(component, index, mount)) in grants.iter().enumerate() {
            for &(other_component, other_index, other) in &grants[i + 1..] {
                let nested = mount.source.starts_with(&other.source)
                    || other.source.starts_with(&mount.source);
                if nested && (mount.writable || other.writable) {
                    return Err(self.grant_error(
                        component,
                        index,
                        mount,
                        format!(
                            "{} overlaps `component.{other_component}.files[{other_index}]` ({}) and one of them is writable; writable grants may not hold or be held by another grant",
                            mount.source.display(),
                            other.source.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A component's code or build directory that `source` holds (a directory inside the
    /// build directory is fine: the build does not read what it does not know): its owner,
    /// what it is, and its path.
    fn code_under(&self, source: &Path) -> Option<(&str, &'static str, PathBuf)> {
        self.components.iter().find_map(|c| {
            let code = std::iter::once(("code", resolved(&c.source)));
            let build = c
                .build
                .iter()
                .map(|b| ("build directory", resolved(&b.workdir)));
            code.chain(build)
                .find(|(_, path)| path.starts_with(source))
                .map(|(what, path)| (c.id.as_str(), what, path))
        })
    }

    fn grant_error(
        &self,
        component: &str,
        index: usize,
        mount: &FileMount,
        message: String,
    ) -> ManifestError {
        ManifestError::new(
            &self.manifest_path,
            mount.location,
            format!("component.{component}.files[{index}].source"),
            message,
        )
    }
}

/// `path` with symlinks resolved as far as it exists (a protected path may not exist yet,
/// e.g. a state directory created on first start).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return rest.iter().rev().fold(canonical, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}
