//! Packs an app for upload: its manifest, the files and directories its components are
//! granted, and every component's Wasm; deterministic, so one app always packs alike.

use super::{component_path, BundleIndex, APP_DIR, BUNDLE_FORMAT, INDEX_PATH};
use anyhow::Context;
use kite_app::App;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A packed bundle and what it holds.
pub struct PackedBundle {
    /// The gzip'd tar.
    pub bytes: Vec<u8>,
    /// Bytes of file content before compression.
    pub unpacked_size: u64,
    pub files: usize,
}

/// Packs `app` (loaded, with every component's source present).
pub fn pack(app: &App) -> anyhow::Result<PackedBundle> {
    let app_dir = app
        .dir
        .canonicalize()
        .with_context(|| format!("reading {}", app.dir.display()))?;
    // Bundle path → host file, sorted, so the bundle's bytes depend only on the contents.
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    // Granted directories, so that empty ones exist on the server too.
    let mut directories = std::collections::BTreeSet::new();
    let manifest = relative(&app_dir, &app.manifest_path)?;
    files.insert(format!("{APP_DIR}/{manifest}"), app.manifest_path.clone());
    let mut components = BTreeMap::new();
    for component in &app.components {
        let bytes = std::fs::read(&component.source).with_context(|| {
            format!(
                "component `{}`: reading {}",
                component.id,
                component.source.display()
            )
        })?;
        let digest = super::blobs::hex(&Sha256::digest(&bytes));
        files.insert(component_path(&digest), component.source.clone());
        components.insert(component.id.clone(), digest);
        for copied in &component.copied_files {
            let path = relative(&app_dir, &copied.source)?;
            files.insert(format!("{APP_DIR}/{path}"), copied.source.clone());
        }
        for mount in &component.files {
            add_directory(&app_dir, &mount.source, &mut files, &mut directories)?;
        }
    }
    let index = BundleIndex {
        bundle_format: BUNDLE_FORMAT,
        manifest,
        components,
    };
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(encoder);
    let index_json = serde_json::to_vec_pretty(&index)?;
    append(&mut tar, INDEX_PATH, &index_json)?;
    let mut unpacked_size = index_json.len() as u64;
    for directory in &directories {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        header.set_mtime(0);
        tar.append_data(&mut header, directory, std::io::empty())
            .with_context(|| format!("packing {directory}"))?;
    }
    for (path, source) in &files {
        let bytes =
            std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        unpacked_size += bytes.len() as u64;
        append(&mut tar, path, &bytes)?;
    }
    let bytes = tar.into_inner()?.finish()?;
    Ok(PackedBundle {
        bytes,
        unpacked_size,
        files: files.len() + 1,
    })
}

fn append(
    tar: &mut tar::Builder<impl std::io::Write>,
    path: &str,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, path, bytes)
        .with_context(|| format!("packing {path}"))
}

/// `dir` and everything below it: regular files into `files`, directories (empty ones
/// too) into `directories`. A symbolic link is refused: what it points at on this machine
/// would not be what the server sees.
fn add_directory(
    app_dir: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, PathBuf>,
    directories: &mut std::collections::BTreeSet<String>,
) -> anyhow::Result<()> {
    directories.insert(format!("{APP_DIR}/{}", relative(app_dir, dir)?));
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            add_directory(app_dir, &path, files, directories)?;
        } else if kind.is_file() {
            let relative = relative(app_dir, &path)?;
            files.insert(format!("{APP_DIR}/{relative}"), path);
        } else {
            anyhow::bail!(
                "{}: a bundle holds regular files and directories only; replace the link with the file",
                path.display()
            );
        }
    }
    Ok(())
}

/// `path` relative to `app_dir`, with `/` separators; outside it is an error.
fn relative(app_dir: &Path, path: &Path) -> anyhow::Result<String> {
    let canonical = path
        .canonicalize()
        .with_context(|| format!("reading {}", path.display()))?;
    let inside = canonical.strip_prefix(app_dir).map_err(|_| {
        anyhow::anyhow!(
            "{} is outside the app directory {}; a bundle holds only the app directory's files",
            path.display(),
            app_dir.display()
        )
    })?;
    let parts: Vec<_> = inside
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}
