//! Host side of every guest interface Kite grants. Each capability lives in one module
//! with the same shape: validate a component's grant at load, link once, fill per instance.

pub mod capability;
mod grants;
mod guest_log;
mod linker;
mod request_tag;
mod state;

pub use capability::key_value::KeyValueStores;
pub use capability::sqlite::SqliteDatabases;
pub use grants::{AppResources, ComponentGrants, MAX_RESOURCES_PER_INSTANCE};
pub use linker::add_to_linker;
pub use state::InstanceState;
