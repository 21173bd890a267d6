//! Everything one component was granted, validated once at load; each request's
//! [`InstanceState`] is built from this and nothing else (deny by default).

use crate::capability::{
    env::EnvGrant, files::FilesGrant, key_value::KeyValueGrant, key_value::KeyValueStores,
    outbound_http::OutboundHttpGrant, sqlite::SqliteDatabases, sqlite::SqliteGrant,
    variables::VariablesGrant,
};
use crate::guest_log::GuestLog;
use crate::request_tag::RequestTag;
use crate::InstanceState;
use kite_app::{ComponentSpec, ResolvedVariables};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::StoreLimitsBuilder;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

/// Host resources (HTTP fields, streams, ...) one instance may hold at once. Each lives in
/// host memory, so the table is bounded like linear memory is.
pub const MAX_RESOURCES_PER_INSTANCE: usize = 16_384;

fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES_PER_INSTANCE);
    table
}

pub struct ComponentGrants {
    component: Arc<str>,
    env: EnvGrant,
    files: FilesGrant,
    outbound_http: OutboundHttpGrant,
    variables: VariablesGrant,
    key_value: KeyValueGrant,
    sqlite: SqliteGrant,
    memory_limit: usize,
}

/// What all components of an app share, built once at start-up from the manifest and
/// the providers: resolved variables, key-value stores and SQLite databases by label.
#[derive(Default)]
pub struct AppResources {
    pub variables: ResolvedVariables,
    pub key_value: KeyValueStores,
    pub sqlite: SqliteDatabases,
}

impl ComponentGrants {
    pub fn validate(spec: &ComponentSpec, resources: &AppResources) -> anyhow::Result<Self> {
        Ok(ComponentGrants {
            component: spec.id.as_str().into(),
            env: EnvGrant::validate(spec)?,
            files: FilesGrant::validate(spec)?,
            outbound_http: OutboundHttpGrant::validate(spec)?,
            variables: VariablesGrant::validate(spec, &resources.variables)?,
            key_value: KeyValueGrant::validate(spec, &resources.key_value)?,
            sqlite: SqliteGrant::validate(spec, &resources.sqlite)?,
            memory_limit: usize::try_from(spec.limits.memory).unwrap_or(usize::MAX),
        })
    }

    /// A fresh instance state, for exactly one request (see [`InstanceState::begin_request`]).
    pub fn instance_state(&self) -> anyhow::Result<InstanceState> {
        let request = RequestTag::default();
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        wasi.stdout(GuestLog::new(
            self.component.clone(),
            request.clone(),
            "stdout",
        ));
        wasi.stderr(GuestLog::new(
            self.component.clone(),
            request.clone(),
            "stderr",
        ));
        self.env.prepare(&mut wasi);
        self.files.prepare(&mut wasi)?;
        Ok(InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: resource_table(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.memory_limit)
                .build(),
            outbound: self.outbound_http.prepare(request.clone()),
            request,
            variables: self.variables.prepare(),
            key_value: self.key_value.prepare(),
            sqlite: self.sqlite.prepare(),
            deadline: None,
        })
    }
}
