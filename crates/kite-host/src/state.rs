//! The per-instance host state (the `T` of `Store<T>`): built fresh for every request
//! from one component's grants, dropped with the instance.

use crate::capability::key_value::ComponentKeyValue;
use crate::capability::llm::NoModels;
use crate::capability::outbound_http::OutboundHttp;
use crate::capability::outbound_policy::ClientUse;
use crate::capability::sqlite::ComponentSqlite;
use crate::capability::variables::ComponentVariables;
use crate::held_bytes::HeldBytes;
use crate::instance_limits::InstanceLimits;
use crate::request_tag::RequestTag;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: InstanceLimits,
    pub(crate) outbound: OutboundHttp,
    pub(crate) variables: ComponentVariables,
    pub(crate) key_value: ComponentKeyValue,
    pub(crate) sqlite: ComponentSqlite,
    pub(crate) llm: NoModels,
    /// Shared by the Redis, PostgreSQL and MQTT clients.
    pub(crate) clients: ClientUse,
    pub(crate) request: RequestTag,
    /// When the request must be done by (set when it starts running).
    pub(crate) deadline: Option<Instant>,
    /// What Spin 4's async calls and streams hold for this instance (`limits.host_memory`).
    pub(crate) held: HeldBytes,
}

impl InstanceState {
    /// Hands the instance its request: from now on its logs carry `request_id`, and its
    /// outbound requests to the app count `chain_depth` hops before them. An instance
    /// serves one request only.
    pub fn begin_request(&mut self, request_id: Arc<str>, chain_depth: u32) {
        self.request.set(request_id, chain_depth);
    }

    /// The request must be done by `deadline`: host calls that can stop early (SQLite
    /// statements) stop there; the guest's own code is stopped by the epoch deadline.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// When the request must be done by, once it has started.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the request's deadline (if it has started) has passed.
    pub fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// How far the instance's linear memories grew, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.limits.memory_bytes()
    }

    /// The memory and table limits the store enforces (`Store::limiter`).
    pub fn limits(&mut self) -> &mut InstanceLimits {
        &mut self.limits
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
