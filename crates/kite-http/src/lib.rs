//! Kite's HTTP trigger: a hyper server on one current-thread runtime per core, a router
//! from paths to components, and the executors that run a fresh instance per request
//! (wasi:http 0.2 and 0.3 components, and Wagi's CGI programs).

mod access_log;
mod body_limit;
mod executor;
mod failure;
mod gate;
mod instances;
mod request_id;
mod response_body;
mod router;
mod server;
mod service;
mod spin_headers;
mod static_response;
mod trigger;
mod wagi;
mod wasi_http;
mod write_timeout;

pub use access_log::{set_access_tap, use_ansi_colours, AccessTap};
pub use failure::FailureCounts;
pub use instances::{AheadBudget, FreshInstance, InstanceFactory};
pub use server::{serve, RequestHandler, ServeOptions};
pub use trigger::RequestBody;
pub use trigger::{ChainAdmission, ComponentLoaded, HttpTrigger, Linkers, TriggerOptions};
