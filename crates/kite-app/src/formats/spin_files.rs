//! Spin's `files` and `exclude_files`: globs, single files and `{ source, destination }`
//! entries expanded at load into the list of files copied read-only into the guest's `/`.

use super::checks::is_clean_guest_path;
use super::source::ManifestSource;
use crate::model::CopiedFile;
use crate::ManifestError;
use glob::Pattern;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One `files` entry as written: a path or glob, or a `{ source, destination }` table.
pub(crate) enum FilesEntry {
    Pattern(String),
    Mapped { source: String, destination: String },
}

impl FilesEntry {
    pub fn from_value(value: &toml::Value) -> Option<Self> {
        match value {
            toml::Value::String(pattern) => Some(FilesEntry::Pattern(pattern.clone())),
            toml::Value::Table(table) if table.len() == 2 => {
                let source = table.get("source")?.as_str()?.to_string();
                let destination = table.get("destination")?.as_str()?.to_string();
                Some(FilesEntry::Mapped {
                    source,
                    destination,
                })
            }
            _ => None,
        }
    }
}

/// Expands `entries` (the manifest's `files` under `key`) into the files to copy, leaving
/// out what an `exclude_files` pattern matches (relative to the app directory, as Spin
/// does; a file named on its own is never excluded). Every file must resolve inside the
/// app directory.
pub(crate) fn copied_files(
    source: &ManifestSource<'_>,
    key: &str,
    entries: &[Spanned<toml::Value>],
    excludes: &[Spanned<String>],
) -> Result<Vec<CopiedFile>, ManifestError> {
    let app_dir = source
        .dir
        .canonicalize()
        .unwrap_or_else(|_| source.dir.to_path_buf());
    let mut exclude = Vec::with_capacity(excludes.len());
    for (i, pattern) in excludes.iter().enumerate() {
        exclude.push(Pattern::new(pattern.get_ref()).map_err(|e| {
            source.error_at(
                pattern.span(),
                &format!("{}.exclude_files[{i}]", key.trim_end_matches(".files")),
                format!("invalid glob pattern {:?}: {e}", pattern.get_ref()),
            )
        })?);
    }
    let excluded = |relative: &Path| exclude.iter().any(|p| p.matches_path(relative));
    let mut copied = Vec::new();
    for (i, spanned) in entries.iter().enumerate() {
        let entry_key = format!("{key}[{i}]");
        let fail = |message: String| source.error_at(spanned.span(), &entry_key, message);
        let mut add = |file: &Path, guest_path: String| -> Result<(), ManifestError> {
            let canonical = file
                .canonicalize()
                .map_err(|e| fail(format!("cannot use {}: {e}", file.display())))?;
            if !canonical.starts_with(&app_dir) {
                return Err(fail(format!(
                    "{} resolves to {}, outside the app directory {}; only files inside the app may be granted",
                    file.display(),
                    canonical.display(),
                    app_dir.display()
                )));
            }
            copied.push(CopiedFile {
                source: canonical,
                guest_path,
                key: entry_key.clone(),
                location: Some(source.location(spanned.span())),
            });
            Ok(())
        };
        match FilesEntry::from_value(spanned.get_ref()) {
            None => {
                return Err(fail(
                    "expected a path or glob (\"static/**/*\") or { source = \"dir\", destination = \"/path\" }".into(),
                ))
            }
            Some(FilesEntry::Pattern(pattern)) => {
                let relative = Path::new(&pattern);
                if relative.is_absolute() || pattern.split('/').any(|part| part == "..") {
                    return Err(fail(format!(
                        "{pattern:?} must be a path or glob relative to the app directory, without `..`"
                    )));
                }
                if pattern == "." || pattern.ends_with("/.") {
                    return Err(fail(format!(
                        "{pattern:?} names a directory by `.`; name the files (\"dir/**/*\") or the directory itself"
                    )));
                }
                let path = source.dir.join(relative);
                if path.is_file() {
                    add(&path, guest_path_of(relative))?;
                } else if path.is_dir() {
                    for file in files_under(&path).map_err(&fail)? {
                        let inside = file.strip_prefix(source.dir).unwrap_or(&file);
                        if !excluded(inside) {
                            add(&file, guest_path_of(inside))?;
                        }
                    }
                } else if Pattern::escape(&pattern) != pattern {
                    let full = format!("{}/{pattern}", escaped(source.dir));
                    let walk = glob::glob(&full)
                        .map_err(|e| fail(format!("invalid glob pattern {pattern:?}: {e}")))?;
                    for found in walk {
                        let file = found.map_err(|e| fail(format!("reading {e}")))?;
                        let inside = file.strip_prefix(source.dir).unwrap_or(&file).to_path_buf();
                        if file.is_file() && !excluded(&inside) {
                            add(&file, guest_path_of(&inside))?;
                        }
                    }
                } else {
                    return Err(fail(format!(
                        "{} does not exist and is not a glob pattern",
                        path.display()
                    )));
                }
            }
            Some(FilesEntry::Mapped {
                source: from,
                destination,
            }) => {
                if Path::new(&from).is_absolute() || from.split('/').any(|part| part == "..") {
                    return Err(fail(format!(
                        "source {from:?} must be a path relative to the app directory, without `..`"
                    )));
                }
                let guest_root = format!("/{}", destination.trim_start_matches('/'));
                let guest_root = guest_root.trim_end_matches('/');
                if !guest_root.is_empty() && !is_clean_guest_path(guest_root) {
                    return Err(fail(format!(
                        "destination {destination:?} must be a guest path without `.` or `..`, e.g. \"/static\""
                    )));
                }
                let path = source.dir.join(&from);
                if path.is_file() {
                    if guest_root.is_empty() || destination.ends_with('/') {
                        return Err(fail(format!(
                            "{destination:?} is not a valid destination file name for the file {from:?}"
                        )));
                    }
                    add(&path, guest_root.to_string())?;
                } else if path.is_dir() {
                    for file in files_under(&path).map_err(&fail)? {
                        let inside = file.strip_prefix(source.dir).unwrap_or(&file);
                        if excluded(inside) {
                            continue;
                        }
                        let below = file.strip_prefix(&path).unwrap_or(&file);
                        add(&file, format!("{guest_root}{}", guest_path_of(below)))?;
                    }
                } else {
                    return Err(fail(format!(
                        "file or directory {} does not exist",
                        path.display()
                    )));
                }
            }
        }
    }
    Ok(copied)
}

/// `/` followed by `relative`'s segments.
fn guest_path_of(relative: &Path) -> String {
    let mut guest = String::new();
    for part in relative.components() {
        if let std::path::Component::Normal(name) = part {
            guest.push('/');
            guest.push_str(&name.to_string_lossy());
        }
    }
    guest
}

/// Every file below `dir`, in a stable order.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let pattern = format!("{}/**/*", escaped(dir));
    let mut files = Vec::new();
    for found in glob::glob(&pattern).map_err(|e| e.to_string())? {
        let file = found.map_err(|e| format!("reading {e}"))?;
        if file.is_file() {
            files.push(file);
        }
    }
    Ok(files)
}

/// `dir` as a glob pattern that matches only itself.
fn escaped(dir: &Path) -> String {
    Pattern::escape(&dir.to_string_lossy())
}
