//! The host's persistent registry in its state directory: each app's record (versions,
//! hosts, quotas) and variables, written atomically so a crash leaves the old or the new.

use crate::quotas::Quotas;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One deployed app as the registry keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    /// Host names the app answers on besides `<name>.<domain>`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Every version kept, oldest first.
    #[serde(default)]
    pub versions: Vec<VersionRecord>,
    /// The version serving traffic; `None` before the first deploy.
    pub current: Option<u32>,
    #[serde(default)]
    pub quotas: Quotas,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionRecord {
    pub number: u32,
    /// SHA-256 of the uploaded bundle.
    pub bundle_sha256: String,
    /// RFC 3339.
    pub deployed_at: String,
    /// Bytes of file content.
    pub size: u64,
    /// Every blob the version links.
    pub blobs: Vec<String>,
}

impl AppRecord {
    pub fn new(name: &str) -> Self {
        AppRecord {
            name: name.to_string(),
            hosts: Vec::new(),
            versions: Vec::new(),
            current: None,
            quotas: Quotas::default(),
        }
    }

    pub fn next_version(&self) -> u32 {
        self.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1
    }

    /// The version deployed just before the current one.
    pub fn previous_version(&self) -> Option<u32> {
        let current = self.current?;
        self.versions
            .iter()
            .map(|v| v.number)
            .filter(|&n| n < current)
            .max()
    }
}

/// Versions kept per app (the current one included); older ones are deleted on deploy.
pub const KEPT_VERSIONS: usize = 10;

pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry under `state_dir`, created (owner-only) if missing.
    pub fn open(state_dir: &Path) -> anyhow::Result<Self> {
        for dir in [state_dir.to_path_buf(), state_dir.join("apps")] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        Ok(Registry {
            dir: state_dir.to_path_buf(),
        })
    }

    fn app_dir(&self, name: &str) -> PathBuf {
        self.dir.join("apps").join(name)
    }

    /// Where version `number` of `name` is unpacked.
    pub fn version_dir(&self, name: &str, number: u32) -> PathBuf {
        self.app_dir(name).join("versions").join(number.to_string())
    }

    /// Where `name`'s stores live, shared by all its versions.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.app_dir(name).join("data")
    }

    /// Every app's record, in name order; a record that cannot be read is reported and left.
    pub fn list(&self) -> anyhow::Result<Vec<AppRecord>> {
        let mut records = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("apps"))? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_valid_app_name(name) {
                continue;
            }
            match self.get(name) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(e) => tracing::error!("app `{name}`: cannot read its record: {e:#}"),
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    pub fn get(&self, name: &str) -> anyhow::Result<Option<AppRecord>> {
        let file = self.app_dir(name).join("app.json");
        match std::fs::read(&file) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", file.display())),
        }
    }

    /// `name`'s record, or a new one (not saved) for an app not seen before.
    pub fn get_or_new(&self, name: &str) -> anyhow::Result<AppRecord> {
        Ok(self.get(name)?.unwrap_or_else(|| AppRecord::new(name)))
    }

    pub fn save(&self, record: &AppRecord) -> anyhow::Result<()> {
        let dir = self.app_dir(&record.name);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        write_atomically(&dir.join("app.json"), &serde_json::to_vec_pretty(record)?)
    }

    /// The values set for `name`'s variables (secrets included).
    pub fn variables(&self, name: &str) -> anyhow::Result<BTreeMap<String, String>> {
        let file = self.app_dir(name).join("variables.json");
        match std::fs::read(&file) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", file.display())),
        }
    }

    pub fn set_variables(
        &self,
        name: &str,
        values: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        write_atomically(
            &self.app_dir(name).join("variables.json"),
            &serde_json::to_vec(values)?,
        )
    }

    /// Deletes `name` with its versions and data.
    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        let dir = self.app_dir(name);
        // Renamed first (to a name no app can have), so a crash midway leaves no
        // half-removed app behind; [`Self::sweep`] finishes the job.
        let mut nonce = [0u8; 8];
        let _ = getrandom::fill(&mut nonce);
        let doomed = self
            .dir
            .join("apps")
            .join(format!(".removed-{name}-{}", crate::bundle::hex(&nonce)));
        std::fs::rename(&dir, &doomed)?;
        std::fs::remove_dir_all(&doomed)?;
        Ok(())
    }

    /// Clears what a crash may have left: uploads in `tmp/`, apps half removed, and
    /// version directories no record names (a deploy cut short).
    pub fn sweep(&self) -> anyhow::Result<()> {
        let tmp = self.dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        for entry in std::fs::read_dir(self.dir.join("apps"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                std::fs::remove_dir_all(entry.path())?;
                continue;
            }
            let Ok(Some(record)) = self.get(&name) else {
                continue;
            };
            let Ok(versions) = std::fs::read_dir(entry.path().join("versions")) else {
                continue;
            };
            for version in versions {
                let version = version?;
                let number = version.file_name().to_string_lossy().parse::<u32>().ok();
                if !record.versions.iter().any(|v| Some(v.number) == number) {
                    std::fs::remove_dir_all(version.path())?;
                }
            }
        }
        Ok(())
    }

    /// Drops versions beyond the newest [`KEPT_VERSIONS`] (never the current one) from
    /// `record`; returns them, for [`Self::delete_versions`] once the record is saved.
    pub fn prune_versions(&self, record: &mut AppRecord) -> Vec<VersionRecord> {
        let mut pruned = Vec::new();
        while record.versions.len() > KEPT_VERSIONS {
            let Some(oldest) = record
                .versions
                .iter()
                .position(|v| Some(v.number) != record.current)
            else {
                break;
            };
            pruned.push(record.versions.remove(oldest));
        }
        pruned
    }

    /// Deletes the directories of `versions` of `name`.
    pub fn delete_versions(&self, name: &str, versions: &[VersionRecord]) -> anyhow::Result<()> {
        for version in versions {
            let dir = self.version_dir(name, version.number);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
        }
        Ok(())
    }

    /// Every blob some kept version of some app links.
    pub fn blobs_in_use(&self) -> anyhow::Result<HashSet<String>> {
        Ok(self
            .list()?
            .into_iter()
            .flat_map(|record| record.versions.into_iter().flat_map(|v| v.blobs))
            .collect())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, owner-only.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// Whether `name` can be an app's name: a DNS label (it becomes `<name>.<domain>`).
pub fn is_valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
