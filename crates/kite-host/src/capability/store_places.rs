//! Where each store label keeps its data, and the load-time check that no two labels can
//! ever address the same backend key: distinct SQLite files, non-overlapping Redis prefixes.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The backend place behind one label.
#[derive(Debug, Clone)]
pub(crate) enum StorePlace {
    /// An SQLite file (it exists once the store is open): all of it, or one `part` of it
    /// no other part can reach (a key-value table, or one store's rows in Spin's table).
    File { path: PathBuf, part: Option<String> },
    /// Keys under `prefix` in one database of one Redis server.
    Redis { server: String, prefix: String },
}

/// A store's place, with what to call the store in messages (e.g. "key-value store `a`").
pub(crate) type NamedPlace = (String, StorePlace);

/// Fails, naming both stores, if two of `places` share a file (same inode, whatever the
/// paths or links) or a Redis key space (one prefix starts the other on the same server).
pub(crate) fn check_distinct(places: &[NamedPlace]) -> anyhow::Result<()> {
    for (i, (first_name, first)) in places.iter().enumerate() {
        for (second_name, second) in &places[i + 1..] {
            if let Some(shared) = shared(first, second)? {
                anyhow::bail!(
                    "{first_name} and {second_name} would share data ({shared}); give each label its own {}",
                    match first {
                        StorePlace::File { .. } => "file (`path`) in the runtime configuration",
                        StorePlace::Redis { .. } => "`prefix`, neither starting the other",
                    }
                );
            }
        }
    }
    Ok(())
}

/// What `a` and `b` share, if anything.
fn shared(a: &StorePlace, b: &StorePlace) -> anyhow::Result<Option<String>> {
    Ok(match (a, b) {
        (
            StorePlace::File { path: a, part },
            StorePlace::File {
                path: b,
                part: other_part,
            },
        ) => {
            let (ma, mb) = (metadata(a)?, metadata(b)?);
            let apart = part.is_some() && other_part.is_some() && part != other_part;
            (ma.dev() == mb.dev() && ma.ino() == mb.ino() && !apart)
                .then(|| format!("{} and {} are the same file", a.display(), b.display()))
        }
        (
            StorePlace::Redis { server, prefix },
            StorePlace::Redis {
                server: other_server,
                prefix: other_prefix,
            },
        ) if server == other_server
            && (prefix.starts_with(other_prefix.as_str())
                || other_prefix.starts_with(prefix.as_str())) =>
        {
            Some(format!(
                "Redis prefixes {prefix:?} and {other_prefix:?} on {server}"
            ))
        }
        _ => None,
    })
}

fn metadata(path: &PathBuf) -> anyhow::Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(prefix: &str) -> StorePlace {
        StorePlace::Redis {
            server: "127.0.0.1:6379/0".into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn the_same_file_by_any_path_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.sqlite");
        std::fs::write(&file, "").unwrap();
        std::fs::write(dir.path().join("b.sqlite"), "").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("link.sqlite")).unwrap();
        let place = |name: &str| StorePlace::File {
            path: dir.path().join(name),
            part: None,
        };
        let named = |n: &str, p| (format!("store `{n}`"), p);
        assert!(
            check_distinct(&[named("a", place("a.sqlite")), named("b", place("b.sqlite"))]).is_ok()
        );
        let error = check_distinct(&[
            named("a", place("a.sqlite")),
            named("b", place("b.sqlite")),
            named("c", place("link.sqlite")),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("store `a` and store `c`"), "{error}");
        // Spin's layout keeps stores apart within one file; a whole-file database does not.
        let spin = |store: &str| StorePlace::File {
            path: file.clone(),
            part: Some(format!("spin_key_value:{store}")),
        };
        assert!(check_distinct(&[named("a", spin("a")), named("b", spin("b"))]).is_ok());
        assert!(check_distinct(&[named("a", spin("a")), named("a2", spin("a"))]).is_err());
        assert!(check_distinct(&[named("a", spin("a")), named("db", place("a.sqlite"))]).is_err());
    }

    #[test]
    fn overlapping_redis_prefixes_on_one_server_are_shared() {
        let named = |n: &str, p| (n.to_string(), p);
        assert!(check_distinct(&[named("a", redis("x:a:")), named("b", redis("x:b:"))]).is_ok());
        assert!(check_distinct(&[named("a", redis("x:")), named("b", redis("x:b:"))]).is_err());
        assert!(check_distinct(&[named("a", redis("")), named("b", redis("y"))]).is_err());
        let elsewhere = StorePlace::Redis {
            server: "127.0.0.1:6379/1".into(),
            prefix: "x:".into(),
        };
        assert!(check_distinct(&[named("a", redis("x:")), named("b", elsewhere)]).is_ok());
    }
}
