//! Everything one component was granted, validated once at load; each request's
//! [`InstanceState`] is built from this and nothing else (deny by default).

use crate::capability::store_places::check_distinct;
use crate::capability::{
    client_tls::ClientTlsSettings,
    env::EnvGrant,
    files::FilesGrant,
    key_value::KeyValueGrant,
    key_value::KeyValueStores,
    local_dispatch::LocalDispatch,
    outbound_http::OutboundHttpGrant,
    outbound_policy::{ClientUse, OutboundPolicy},
    sqlite::SqliteDatabases,
    sqlite::SqliteGrant,
    tcp::TcpGrant,
    variables::VariablesGrant,
};
use crate::guest_log::{GuestLog, LogRate};
use crate::held_bytes::HeldBytes;
use crate::host_budget;
use crate::instance_limits::InstanceLimits;
use crate::request_tag::RequestTag;
use crate::InstanceState;
use kite_app::{BlockedNetwork, ClientTls, ComponentSpec, ResolvedVariables};
use std::sync::Arc;
use wasmtime_wasi::WasiCtxBuilder;

pub struct ComponentGrants {
    pub(crate) component: Arc<str>,
    /// The app's name in log lines, on a host of many apps.
    app_label: Option<Arc<str>>,
    pub(crate) env: EnvGrant,
    pub(crate) files: FilesGrant,
    outbound: Arc<OutboundPolicy>,
    outbound_http: OutboundHttpGrant,
    tcp: Arc<TcpGrant>,
    variables: VariablesGrant,
    key_value: KeyValueGrant,
    sqlite: SqliteGrant,
    pub(crate) memory_limit: usize,
    /// Host resources one instance may hold at once (from `limits.host_memory`).
    pub(crate) max_resources: usize,
    /// Bytes beyond its handles an instance's async calls and streams may hold.
    pub(crate) host_memory: u64,
    pub(crate) log_rate: Arc<LogRate>,
}

/// What all components of an app share, built once at start-up from the manifest and
/// the providers: resolved variables, key-value stores and SQLite databases by label.
#[derive(Default)]
pub struct AppResources {
    pub variables: ResolvedVariables,
    pub key_value: KeyValueStores,
    pub sqlite: SqliteDatabases,
    /// Networks no outbound connection of any component may reach.
    pub blocked_networks: Vec<BlockedNetwork>,
    /// TLS roots and client certificates for chosen components and hosts.
    pub client_tls: Vec<ClientTls>,
    /// The app's trigger, for requests that stay in the app (service chaining).
    pub local: Arc<LocalDispatch>,
    /// The app's name in log lines, on a host of many apps.
    pub app_label: Option<Arc<str>>,
}

impl AppResources {
    /// The app's shared resources, refused if two store labels could address the same
    /// backend key (one file, or overlapping Redis prefixes).
    pub fn new(
        variables: ResolvedVariables,
        key_value: KeyValueStores,
        sqlite: SqliteDatabases,
        blocked_networks: Vec<BlockedNetwork>,
        client_tls: Vec<ClientTls>,
    ) -> anyhow::Result<Self> {
        let places: Vec<_> = key_value
            .places
            .iter()
            .chain(&sqlite.places)
            .cloned()
            .collect();
        check_distinct(&places)?;
        Ok(AppResources {
            variables,
            key_value,
            sqlite,
            blocked_networks,
            client_tls,
            local: Arc::default(),
            app_label: None,
        })
    }
}

impl ComponentGrants {
    pub fn validate(spec: &ComponentSpec, resources: &AppResources) -> anyhow::Result<Self> {
        let outbound = OutboundPolicy::new(
            spec,
            &resources.blocked_networks,
            ClientTlsSettings::for_component(&resources.client_tls, &spec.id)?,
            resources.local.clone(),
        );
        Ok(ComponentGrants {
            component: spec.id.as_str().into(),
            app_label: resources.app_label.clone(),
            env: EnvGrant::validate(spec)?,
            files: FilesGrant::validate(spec)?,
            outbound: outbound.clone(),
            tcp: Arc::new(TcpGrant::validate(outbound.clone())?),
            outbound_http: OutboundHttpGrant::validate(outbound)?,
            variables: VariablesGrant::validate(spec, &resources.variables)?,
            key_value: KeyValueGrant::validate(spec, &resources.key_value)?,
            sqlite: SqliteGrant::validate(spec, &resources.sqlite)?,
            memory_limit: usize::try_from(spec.limits.memory).unwrap_or(usize::MAX),
            max_resources: host_budget::max_resources(spec.limits.host_memory),
            host_memory: spec.limits.host_memory,
            log_rate: LogRate::new(),
        })
    }

    /// Who a guest's log lines are from: the component, and the app on a host of many.
    pub(crate) fn log_source(&self) -> (Arc<str>, Option<Arc<str>>) {
        (self.component.clone(), self.app_label.clone())
    }

    /// Host resources an instance may hold at once (from `limits.host_memory`).
    pub fn max_resources(&self) -> usize {
        self.max_resources
    }

    /// A fresh instance state, for exactly one request (see [`InstanceState::begin_request`]).
    pub fn instance_state(&self) -> anyhow::Result<InstanceState> {
        let request = RequestTag::default();
        let mut wasi = WasiCtxBuilder::new();
        self.tcp.prepare(&mut wasi, &self.component);
        let (stdout, stderr) =
            GuestLog::pair(self.log_source(), request.clone(), self.log_rate.clone());
        wasi.stdout(stdout);
        wasi.stderr(stderr);
        self.env.prepare(&mut wasi);
        self.state_from(wasi, request)
    }

    /// A fresh state for a WASI 0.2 command run as a CGI program (Wagi): as
    /// [`Self::instance_state`], with `run`'s environment, arguments, stdin and stdout.
    pub fn command_state(&self, run: crate::CgiRun) -> anyhow::Result<InstanceState> {
        let request = RequestTag::default();
        request.set(run.request_id.clone(), run.chain_depth);
        let mut wasi = WasiCtxBuilder::new();
        self.tcp.prepare(&mut wasi, &self.component);
        let (_, stderr) = GuestLog::pair(self.log_source(), request.clone(), self.log_rate.clone());
        crate::cgi_state::fill_cgi_context(&mut wasi, self.env.vars(), run);
        wasi.stderr(stderr);
        self.state_from(wasi, request)
    }

    fn state_from(
        &self,
        mut wasi: WasiCtxBuilder,
        request: RequestTag,
    ) -> anyhow::Result<InstanceState> {
        let mut wasi = wasi.build();
        self.files.prepare(&mut wasi);
        Ok(InstanceState {
            wasi,
            http: host_budget::http_context(),
            table: host_budget::resource_table(self.max_resources),
            limits: InstanceLimits::new(self.memory_limit),
            outbound: self.outbound_http.prepare(request.clone()),
            clients: ClientUse::new(self.outbound.clone(), request.clone()),
            request,
            variables: self.variables.prepare(),
            key_value: self.key_value.prepare(),
            sqlite: self.sqlite.prepare(),
            llm: crate::capability::llm::NoModels,
            deadline: None,
            held: HeldBytes::new(self.host_memory),
        })
    }
}
