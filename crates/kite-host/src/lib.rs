//! Host side of every guest interface Kite grants. Each capability lives in one module
//! with the same shape: validate a component's grant at load, link once, fill per instance.

pub mod capability;
mod cgi_state;
pub mod download;
mod grants;
mod guest_log;
mod held_bytes;
pub mod host_budget;
mod instance_limits;
mod linker;
mod request_tag;
mod state;

pub use capability::key_value::KeyValueStores;
pub use capability::local_dispatch::{
    ChainDepth, LocalDispatch, LocalHandler, LocalTarget, MAX_CHAIN_DEPTH,
};
pub use capability::sqlite::SqliteDatabases;
pub use cgi_state::{add_cgi_to_linker, CgiRun, CgiState};
pub use grants::{AppResources, ComponentGrants};
pub use guest_log::escape_line;
pub use instance_limits::InstanceLimits;
pub use linker::{add_to_concurrent_linker, add_to_linker};
pub use state::InstanceState;
