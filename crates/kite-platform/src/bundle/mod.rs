//! Bundles: an app's manifest with every file it references, as one gzip'd tar that
//! `kite deploy` packs and `kite serve` unpacks into content-addressed blobs.

mod blobs;
mod pack;
mod unpack;

pub use blobs::{hex, BlobStore};
pub use pack::{pack, PackedBundle};
pub use unpack::{read_index, unpack, BundleLimits, Unpacked};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The bundle's table of contents, at [`INDEX_PATH`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleIndex {
    /// Always [`BUNDLE_FORMAT`].
    pub bundle_format: u32,
    /// The manifest's path below `app/`.
    pub manifest: String,
    /// Each component's Wasm, by SHA-256 (lowercase hex): the file `components/<hex>.wasm`.
    pub components: BTreeMap<String, String>,
}

pub const BUNDLE_FORMAT: u32 = 1;
/// Where the index is in a bundle.
pub const INDEX_PATH: &str = "kite-bundle.json";
/// The app directory's files are below this prefix.
pub const APP_DIR: &str = "app";
/// Component sources are below this prefix, named by digest.
pub const COMPONENTS_DIR: &str = "components";

/// The bundle path of a component source with this digest.
pub fn component_path(sha256: &str) -> String {
    format!("{COMPONENTS_DIR}/{sha256}.wasm")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn app_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.wasm"), b"\0asm\x0d\0\x01\0pretend").unwrap();
        std::fs::create_dir_all(dir.path().join("static/empty")).unwrap();
        std::fs::write(dir.path().join("static/a.txt"), "a").unwrap();
        std::fs::write(
            dir.path().join("kite.toml"),
            "manifest_version = 1\n[app]\nname = \"t\"\n[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
             [component.c]\nsource = \"app.wasm\"\nfiles = [{ source = \"static\", destination = \"/s\" }]\n",
        )
        .unwrap();
        dir
    }

    const LIMITS: BundleLimits = BundleLimits {
        max_unpacked: 1 << 20,
        max_files: 100,
    };

    #[test]
    fn a_packed_app_unpacks_read_only_with_only_its_wasm_shared() {
        let dir = app_dir();
        let app = kite_app::load_app(dir.path()).unwrap();
        let packed = pack(&app).unwrap();
        assert_eq!(
            pack(&app).unwrap().bytes,
            packed.bytes,
            "packing is deterministic"
        );
        let state = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(&state.path().join("blobs")).unwrap();
        let (one, two) = (state.path().join("v1"), state.path().join("v2"));
        for dest in [&one, &two] {
            std::fs::create_dir_all(dest).unwrap();
            let unpacked = unpack(
                packed.bytes.as_slice(),
                LIMITS,
                &blobs,
                dest,
                &mut Vec::new(),
            )
            .unwrap();
            assert_eq!(unpacked.index.manifest, "kite.toml");
            assert_eq!(unpacked.blobs.len(), 1, "the Wasm only");
        }
        assert_eq!(
            std::fs::read_to_string(one.join("app/static/a.txt")).unwrap(),
            "a"
        );
        assert!(one.join("app/static/empty").is_dir());
        let index = read_index(&one).unwrap();
        let wasm = one.join(component_path(&index.components["c"]));
        assert_eq!(std::fs::read(wasm).unwrap(), b"\0asm\x0d\0\x01\0pretend");
        // A guest's files are each version's own (nothing another app holds shows in their
        // link count); the Wasm, which no guest sees as a file, is one shared blob.
        let (a, b) = (
            std::fs::metadata(one.join("app/static/a.txt")).unwrap(),
            std::fs::metadata(two.join("app/static/a.txt")).unwrap(),
        );
        assert_ne!(a.ino(), b.ino());
        assert_eq!(a.nlink(), 1);
        assert!(a.permissions().readonly());
        let wasm_in = |dest: &std::path::Path| {
            std::fs::metadata(dest.join(component_path(&index.components["c"]))).unwrap()
        };
        assert_eq!(wasm_in(&one).ino(), wasm_in(&two).ino());
    }

    #[test]
    fn a_bundle_over_its_limits_is_refused() {
        let dir = app_dir();
        let app = kite_app::load_app(dir.path()).unwrap();
        let packed = pack(&app).unwrap();
        let state = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(&state.path().join("blobs")).unwrap();
        let small = BundleLimits {
            max_unpacked: 10,
            ..LIMITS
        };
        let error = unpack(
            packed.bytes.as_slice(),
            small,
            &blobs,
            state.path(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("bundle quota"), "{error}");
        let few = BundleLimits {
            max_files: 2,
            ..LIMITS
        };
        let error = unpack(
            packed.bytes.as_slice(),
            few,
            &blobs,
            state.path(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("more than 2 entries"), "{error}");
    }

    fn gzip_tar() -> tar::Builder<flate2::write::GzEncoder<Vec<u8>>> {
        tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ))
    }

    /// Why unpacking `bundle` fails.
    fn refusal(bundle: Vec<u8>) -> anyhow::Error {
        let state = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(&state.path().join("blobs")).unwrap();
        unpack(
            bundle.as_slice(),
            LIMITS,
            &blobs,
            state.path(),
            &mut Vec::new(),
        )
        .unwrap_err()
    }

    #[test]
    fn extension_records_cannot_make_the_unpacker_hold_more_than_the_quota() {
        // A PAX record the tar reader would buffer whole: 8 MiB of attributes.
        let mut tar = gzip_tar();
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::XHeader);
        let record = vec![b'a'; 8 << 20];
        header.set_size(record.len() as u64);
        header.set_path("pax").unwrap();
        header.set_cksum();
        tar.append(&header, record.as_slice()).unwrap();
        let error = refusal(tar.into_inner().unwrap().finish().unwrap());
        assert!(
            error.to_string().contains("decompresses to more than"),
            "{error}"
        );
    }

    #[test]
    fn a_component_must_be_named_by_its_digest() {
        let mut tar = gzip_tar();
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        let claimed = format!("{COMPONENTS_DIR}/{}.wasm", "0".repeat(64));
        tar.append_data(&mut header, &claimed, b"\0asm".as_slice())
            .unwrap();
        let error = refusal(tar.into_inner().unwrap().finish().unwrap());
        assert!(
            error.to_string().contains("named by its SHA-256"),
            "{error}"
        );
    }
}
