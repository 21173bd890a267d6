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
