//! On-disk cache of compiled components, keyed by the wasm's SHA-256 and the engine's
//! compatibility hash, so a second start of the same app skips compilation.

use std::fs::{DirBuilder, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Every entry starts with this, then the XXH3-128 checksum of the serialized component
/// that follows (little-endian). The checksum catches truncation and corruption; nobody
/// else can write the directory (see `new`), so it need not resist forgery, and a
/// non-cryptographic hash reads a large entry several times faster than SHA-256 would.
const ENTRY_MAGIC: &[u8; 8] = b"kitecc\0\x02";
const ENTRY_HEADER_LEN: usize = ENTRY_MAGIC.len() + 16;

fn checksum(serialized: &[u8]) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(serialized).to_le_bytes()
}

pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

/// Why a cache directory is not used: compiled code loaded from it runs unchecked, so only
/// the current user may be able to write it.
#[derive(Debug)]
pub enum UnusableCacheDir {
    Create(PathBuf, std::io::Error),
    Inspect(PathBuf, std::io::Error),
    NotADirectory(PathBuf),
    SymlinkNotOwned {
        link: PathBuf,
        owner: u32,
        user: u32,
    },
    NotOwned {
        dir: PathBuf,
        owner: u32,
        user: u32,
    },
    WritableByOthers {
        dir: PathBuf,
        mode: u32,
    },
}

impl std::fmt::Display for UnusableCacheDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Create(dir, e) => {
                write!(f, "cannot create compile cache directory {}: {e}", dir.display())
            }
            Self::Inspect(dir, e) => {
                write!(f, "cannot inspect compile cache directory {}: {e}", dir.display())
            }
            Self::NotADirectory(dir) => write!(
                f,
                "compile cache path {} is not a directory; remove it or point --cache-dir elsewhere",
                dir.display()
            ),
            Self::SymlinkNotOwned { link, owner, user } => write!(
                f,
                "compile cache directory {} is a symlink owned by uid {owner}, not by the current \
                 user (uid {user}); replace it with a directory of your own or point --cache-dir \
                 elsewhere",
                link.display()
            ),
            Self::NotOwned { dir, owner, user } => write!(
                f,
                "compile cache directory {} is owned by uid {owner}, not by the current user \
                 (uid {user}); fix with `chown {user} {}` or point --cache-dir elsewhere",
                dir.display(),
                dir.display()
            ),
            Self::WritableByOthers { dir, mode } => write!(
                f,
                "compile cache directory {} is writable by group or others (mode {mode:o}); \
                 fix with `chmod go-w {}`",
                dir.display(),
                dir.display()
            ),
        }
    }
}

impl std::error::Error for UnusableCacheDir {}

impl CompileCache {
    /// `$KITE_CACHE_DIR`, else `$XDG_CACHE_HOME/kite`, else `~/.cache/kite`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("KITE_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("kite"));
        }
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("kite"))
    }

    /// Creates `dir` (mode 0700) if missing, and refuses it unless it belongs to the current
    /// user and nobody else can write to it.
    pub fn new(dir: PathBuf, engine: &Engine) -> Result<Self, UnusableCacheDir> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| UnusableCacheDir::Create(dir.clone(), e))?;
        check_only_user_can_write(&dir)?;
        Ok(CompileCache {
            dir,
            engine_key: engine_key(engine),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the compilation of the Wasm whose SHA-256 is `digest` is kept.
    fn entry_path(&self, digest: &[u8; 32], kind: &str) -> PathBuf {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir
            .join(format!("{hex}-{}{kind}.cwasm", self.engine_key))
    }

    /// The cached compilation of the Wasm whose SHA-256 is `digest` (a component, or a
    /// core module kept apart from the component made of the same file), if there is a
    /// usable one. An entry that fails its integrity check or does not deserialize is
    /// removed.
    pub(crate) fn get<T: Compiled>(&self, engine: &Engine, digest: &[u8; 32]) -> Option<T> {
        let path = self.entry_path(digest, T::KIND);
        let entry = match std::fs::read(&path) {
            Ok(entry) => entry,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read compile cache entry {}: {e}", path.display());
                return None;
            }
        };
        match deserialize_verified(engine, &entry) {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                tracing::warn!("discarding compile cache entry {}: {e:#}", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compilation. Failures are logged, never fatal: the cache is an
    /// optimisation.
    pub(crate) fn put<T: Compiled>(&self, compiled: &T, digest: &[u8; 32]) {
        let path = self.entry_path(digest, T::KIND);
        let result = compiled.serialize().and_then(|serialized| {
            let header = entry_header(&serialized);
            Ok(write_atomically(&path, &[&header, &serialized])?)
        });
        if let Err(e) = result {
            tracing::warn!(
                "could not write compile cache entry {}: {e:#}",
                path.display()
            );
        }
    }
}

/// What the cache keeps: compiled components and compiled core modules.
pub(crate) trait Compiled: Sized {
    /// What the entry name carries after the engine key.
    const KIND: &'static str;
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// # Safety
    /// `bytes` must be Wasmtime's own serialization (see `deserialize_verified`).
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
}

impl Compiled for Component {
    const KIND: &'static str = "";
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        unsafe { Component::deserialize(engine, bytes) }
    }
}

impl Compiled for wasmtime::Module {
    const KIND: &'static str = "-module";
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::Module::serialize(self)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        unsafe { wasmtime::Module::deserialize(engine, bytes) }
    }
}

fn engine_key(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    // What Kite does to a component before compiling it is part of what was compiled.
    crate::wasi_versions::served_release_candidates().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn check_only_user_can_write(dir: &Path) -> Result<(), UnusableCacheDir> {
    let inspect_error = |e| UnusableCacheDir::Inspect(dir.into(), e);
    let user = effective_uid();
    let link = std::fs::symlink_metadata(dir).map_err(inspect_error)?;
    if link.file_type().is_symlink() && link.uid() != user {
        return Err(UnusableCacheDir::SymlinkNotOwned {
            link: dir.into(),
            owner: link.uid(),
            user,
        });
    }
    let target = std::fs::metadata(dir).map_err(inspect_error)?;
    if !target.is_dir() {
        return Err(UnusableCacheDir::NotADirectory(dir.into()));
    }
    if target.uid() != user {
        return Err(UnusableCacheDir::NotOwned {
            dir: dir.into(),
            owner: target.uid(),
            user,
        });
    }
    if target.mode() & 0o022 != 0 {
        return Err(UnusableCacheDir::WritableByOthers {
            dir: dir.into(),
            mode: target.mode() & 0o7777,
        });
    }
    Ok(())
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn entry_header(serialized: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(ENTRY_HEADER_LEN);
    header.extend_from_slice(ENTRY_MAGIC);
    header.extend_from_slice(&checksum(serialized));
    header
}

/// The serialized component in `entry`, if its header's digest matches it.
fn verified_payload(entry: &[u8]) -> anyhow::Result<&[u8]> {
    let Some((header, serialized)) = entry.split_at_checked(ENTRY_HEADER_LEN) else {
        anyhow::bail!("too short to hold an integrity header");
    };
    let (magic, digest) = header.split_at(ENTRY_MAGIC.len());
    anyhow::ensure!(
        magic == ENTRY_MAGIC,
        "no integrity header (written by an older Kite?)"
    );
    anyhow::ensure!(
        checksum(serialized) == digest,
        "contents do not match their checksum"
    );
    Ok(serialized)
}

fn deserialize_verified<T: Compiled>(engine: &Engine, entry: &[u8]) -> anyhow::Result<T> {
    let serialized = verified_payload(entry)?;
    // SAFETY: `deserialize` trusts its input to be Wasmtime's own output. `new` checked that
    // the directory belongs to the current user and nobody else can write to it, so the entry
    // was written by `put` (from `Component::serialize`) as this user or by root; the checksum,
    // checked on these very bytes in memory, rules out truncation and corruption since. Wasmtime
    // itself rejects artifacts from another Wasmtime version or an incompatible configuration.
    Ok(unsafe { T::deserialize(engine, serialized) }?)
}

/// Writes a new file (mode 0600) beside `path` and renames it over `path`, so readers see
/// either the old entry or the whole new one.
fn write_atomically(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let tmp = temp_path_beside(path);
    let written = write_new_private_file(&tmp, parts).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_new_private_file(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    parts.iter().try_for_each(|part| file.write_all(part))
}

fn temp_path_beside(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn digest(wasm: &[u8]) -> [u8; 32] {
        Sha256::digest(wasm).into()
    }
    use std::os::unix::fs::PermissionsExt;
    use wasmtime::Config;

    const MARKER: &[u8] = b"kite compile cache test marker";

    fn engine() -> Engine {
        let mut config = Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// A component (as WAT, which `Component::new` accepts too) whose serialized form holds
    /// `MARKER` verbatim in a data segment, where Wasmtime's own checks cannot see a change.
    fn wasm() -> Vec<u8> {
        let marker = std::str::from_utf8(MARKER).unwrap();
        format!(
            r#"(component
                 (core module $m (memory 1) (data (i32.const 0) "{marker}"))
                 (core instance (instantiate $m)))"#
        )
        .into_bytes()
    }

    fn dir_with_mode(parent: &Path, mode: u32) -> PathBuf {
        let dir = parent.join(format!("cache-{mode:o}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    /// Gives `path` (not what it links to) to another user; false if not running as root.
    fn give_away(path: &Path) -> bool {
        match std::os::unix::fs::lchown(path, Some(65534), None) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: changing owners needs root");
                false
            }
            Err(e) => panic!("lchown {}: {e}", path.display()),
        }
    }

    fn cache_with_one_entry(dir: &Path) -> (Engine, CompileCache, Vec<u8>, PathBuf) {
        let engine = engine();
        let cache = CompileCache::new(dir.join("cache"), &engine).unwrap();
        let wasm = wasm();
        cache.put(&Component::new(&engine, &wasm).unwrap(), &digest(&wasm));
        let entry = cache.entry_path(&digest(&wasm), <Component as Compiled>::KIND);
        (engine, cache, wasm, entry)
    }

    #[test]
    fn a_stored_component_is_loaded_back() {
        let tmp = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = CompileCache::new(tmp.path().join("cache"), &engine).unwrap();
        let wasm = wasm();
        assert!(cache.get::<Component>(&engine, &digest(&wasm)).is_none());
        cache.put(&Component::new(&engine, &wasm).unwrap(), &digest(&wasm));
        assert!(cache.get::<Component>(&engine, &digest(&wasm)).is_some());
    }

    #[test]
    fn entries_are_readable_only_by_their_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, _, _, entry) = cache_with_one_entry(tmp.path());
        assert_eq!(mode_of(&entry), 0o600);
    }

    #[test]
    fn a_corrupted_entry_is_removed_not_deserialized() {
        let tmp = tempfile::tempdir().unwrap();
        let (engine, cache, wasm, entry) = cache_with_one_entry(tmp.path());
        let mut bytes = std::fs::read(&entry).unwrap();
        let at = bytes
            .windows(MARKER.len())
            .position(|window| window == MARKER)
            .expect("the data segment is stored verbatim");
        bytes[at] ^= 0x20;
        // SAFETY: the bytes are Wasmtime's own output with one data byte changed.
        let undetected = unsafe { Component::deserialize(&engine, &bytes[ENTRY_HEADER_LEN..]) };
        assert!(undetected.is_ok(), "Wasmtime alone would have loaded it");
        std::fs::write(&entry, &bytes).unwrap();

        assert!(cache.get::<Component>(&engine, &digest(&wasm)).is_none());
        assert!(!entry.exists());
    }

    #[test]
    fn an_entry_without_a_digest_is_removed_not_deserialized() {
        let tmp = tempfile::tempdir().unwrap();
        let (engine, cache, wasm, entry) = cache_with_one_entry(tmp.path());
        let serialized = Component::new(&engine, &wasm).unwrap().serialize().unwrap();
        std::fs::write(&entry, serialized).unwrap();

        assert!(cache.get::<Component>(&engine, &digest(&wasm)).is_none());
        assert!(!entry.exists());
    }

    #[test]
    fn a_missing_directory_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("cache");
        assert!(CompileCache::new(dir.clone(), &engine()).is_ok());
        assert_eq!(mode_of(&dir), 0o700);
    }

    #[test]
    fn a_private_directory_is_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_with_mode(tmp.path(), 0o700);
        assert!(CompileCache::new(dir, &engine()).is_ok());
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o775, 0o757] {
            let dir = dir_with_mode(tmp.path(), mode);
            let refusal = CompileCache::new(dir.clone(), &engine()).err().unwrap();
            assert!(
                matches!(refusal, UnusableCacheDir::WritableByOthers { .. }),
                "{refusal}"
            );
            let message = refusal.to_string();
            assert!(
                message.contains(&format!("chmod go-w {}", dir.display())),
                "{message}"
            );
        }
    }

    #[test]
    fn a_symlink_to_a_directory_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(dir_with_mode(tmp.path(), 0o777), &link).unwrap();
        let refusal = CompileCache::new(link, &engine()).err().unwrap();
        assert!(
            matches!(refusal, UnusableCacheDir::WritableByOthers { .. }),
            "{refusal}"
        );
    }

    #[test]
    fn a_directory_owned_by_someone_else_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_with_mode(tmp.path(), 0o700);
        if !give_away(&dir) {
            return;
        }
        let refusal = CompileCache::new(dir, &engine()).err().unwrap();
        assert!(
            matches!(refusal, UnusableCacheDir::NotOwned { .. }),
            "{refusal}"
        );
    }

    #[test]
    fn a_symlink_owned_by_someone_else_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(dir_with_mode(tmp.path(), 0o700), &link).unwrap();
        assert!(CompileCache::new(link.clone(), &engine()).is_ok());
        if !give_away(&link) {
            return;
        }
        let refusal = CompileCache::new(link, &engine()).err().unwrap();
        assert!(
            matches!(refusal, UnusableCacheDir::SymlinkNotOwned { .. }),
            "{refusal}"
        );
    }
}
