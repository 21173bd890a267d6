//! The front doors: each manifest format parses its own syntax into the one [`App`] model.
//! This module finds the manifest, decides its format and runs the checks every app gets.

mod checks;
mod kite;
mod source;
mod spin_common;
mod spin_files;
mod spin_v1;
mod spin_v2;
mod wagi;

use crate::file_grants::default_protected;
use crate::{App, Location, ManifestError};
use source::ManifestSource;
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE_NAME: &str = "kite.toml";
pub const SPIN_MANIFEST_FILE_NAME: &str = "spin.toml";
pub const WAGI_MANIFEST_FILE_NAME: &str = "modules.toml";

/// Loads the app at `path`: a manifest file, or a directory holding `kite.toml` (or, failing
/// that, `spin.toml`, then Wagi's `modules.toml`).
pub fn load_app(path: &Path) -> Result<App, ManifestError> {
    let manifest_path = if path.is_dir() {
        [
            MANIFEST_FILE_NAME,
            SPIN_MANIFEST_FILE_NAME,
            WAGI_MANIFEST_FILE_NAME,
        ]
        .iter()
        .map(|name| path.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| path.join(MANIFEST_FILE_NAME))
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
    let source = ManifestSource::new(&text, &manifest_path, &dir);
    let app = match detect(&source)? {
        Format::Kite => kite::load(&source)?,
        Format::SpinV2 => spin_v2::load(&source)?,
        Format::SpinV1 => spin_v1::load(&source)?,
        Format::Wagi => wagi::load(&source)?,
    };
    app.check_file_grants(&default_protected(&app))?;
    Ok(app)
}

enum Format {
    Kite,
    SpinV2,
    SpinV1,
    Wagi,
}

/// Decides the format from the manifest's top-level version key, or Wagi's `[[module]]`
/// tables (modules.toml has no version).
fn detect(source: &ManifestSource<'_>) -> Result<Format, ManifestError> {
    let table: toml::Table = toml::from_str(source.text).map_err(|e| {
        let location = e
            .span()
            .map(|span| Location::from_offset(source.text, span.start));
        ManifestError::new(source.file, location, "", e.message().trim().to_string())
    })?;
    if table.contains_key("manifest_version") {
        return Ok(Format::Kite);
    }
    let spin_version = table
        .get("spin_manifest_version")
        .or_else(|| table.get("spin_version"));
    match spin_version {
        Some(toml::Value::Integer(2)) => return Ok(Format::SpinV2),
        Some(toml::Value::String(v)) if v == "1" => return Ok(Format::SpinV1),
        Some(other) => {
            return Err(ManifestError::new(
                source.file,
                None,
                "spin_manifest_version",
                format!("invalid manifest version {other}; Kite reads Spin manifests of version 2 (`spin_manifest_version = 2`) and \"1\""),
            ))
        }
        None => {}
    }
    if table.contains_key("module") {
        return Ok(Format::Wagi);
    }
    Err(ManifestError::new(
        source.file,
        None,
        "",
        "not a manifest Kite knows: a kite.toml starts with `manifest_version = 1`, a Spin app's spin.toml with `spin_manifest_version = 2` (or \"1\"), a Wagi modules.toml lists `[[module]]` tables",
    ))
}
