//! The kite.toml file format as serde sees it: strict (unknown keys are errors) and
//! spanned where a later check needs to point back at a value.

use crate::units::{duration_serde, size_serde};
use crate::OutboundRule;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    pub manifest_version: Spanned<i64>,
    pub app: RawAppInfo,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub component: BTreeMap<String, RawComponent>,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<RawVariable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAppInfo {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub path: Spanned<String>,
    pub component: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComponent {
    pub source: Spanned<String>,
    pub build: Option<RawBuild>,
    #[serde(default)]
    pub files: Vec<RawFileMount>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<OutboundRule>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub variables: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub key_value_stores: Vec<Spanned<String>>,
    #[serde(default)]
    pub sqlite_databases: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBuild {
    pub command: String,
    pub workdir: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileMount {
    pub source: Spanned<String>,
    pub destination: Spanned<String>,
    #[serde(default)]
    pub writable: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default, deserialize_with = "size_serde::deserialize")]
    pub memory: Option<u64>,
    #[serde(default, deserialize_with = "duration_serde::deserialize")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "size_serde::deserialize")]
    pub max_request_body: Option<u64>,
    pub max_concurrency: Option<Spanned<i64>>,
    #[serde(default, deserialize_with = "size_serde::deserialize")]
    pub host_memory: Option<u64>,
}
