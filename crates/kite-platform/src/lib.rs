//! `kite serve`: one long-lived process hosting many apps. Apps arrive as bundles through
//! the admin API, are kept in a registry in the state directory, and are routed by Host.

pub mod admin;
pub mod bundle;
mod host;
pub mod logs;
mod metrics;
mod platform;
mod quotas;
mod registry;
mod runtime;
mod stats;
mod token;

pub use host::{Host, LiveApp};
pub use platform::{AppView, Platform, PlatformError, PlatformSettings};
pub use quotas::Quotas;
pub use stats::StatsSnapshot;
pub use token::{AdminToken, TOKEN_FILE};
