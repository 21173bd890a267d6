//! Kite apps as data: a manifest (`kite.toml`, or a Spin app's `spin.toml`) is parsed,
//! validated and turned into an [`App`], the one model every later layer reads.

mod blocked_networks;
mod client_tls;
mod error;
mod file_grants;
mod formats;
mod model;
mod outbound;
mod route;
mod runtime_config;
mod units;
mod variable_providers;
mod variables;

pub use blocked_networks::BlockedNetwork;
pub use client_tls::{ClientIdentity, ClientTls};
pub use error::{Location, ManifestError};
pub use file_grants::ProtectedPath;
pub use formats::{load_app, MANIFEST_FILE_NAME, SPIN_MANIFEST_FILE_NAME, WAGI_MANIFEST_FILE_NAME};
pub use model::{
    App, BuildSpec, ComponentSpec, CopiedFile, Download, Executor, FileMount, HttpSettings, Limits,
    ManifestFormat, OutboundTemplate, Route, StaticResponse, Target, TriggerSpec, WagiSettings,
    DEFAULT_STORE,
};
pub use outbound::OutboundRule;
pub use route::{RouteMatch, RoutePattern, RouteSpecificity};
pub use runtime_config::{DatabaseBackend, RuntimeConfig, StoreBackend};
pub use units::{parse_duration, parse_size};
pub use variable_providers::{
    prefixed_name, VariableProvider, VariableSources, ENV_PREFIX, SPIN_ENV_PREFIX,
};
pub use variables::{is_valid_variable_name, ResolvedVariables, Template, Value, VariableDecl};
