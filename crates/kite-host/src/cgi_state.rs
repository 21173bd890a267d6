//! The state of one CGI program run (Wagi): a WASI preview 1 context filled from the
//! component's grants and the request (CGI variables, arguments, stdin and stdout), its
//! memory limit and its deadline. Nothing else is granted: no sockets, no Spin interfaces.

use crate::guest_log::GuestLog;
use crate::instance_limits::InstanceLimits;
use crate::request_tag::RequestTag;
use crate::ComponentGrants;
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi::cli::{StdinStream, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};

pub struct CgiState {
    wasi: WasiP1Ctx,
    limits: InstanceLimits,
    deadline: Option<Instant>,
}

/// What one run is given besides the component's grants.
pub struct CgiRun {
    pub request_id: Arc<str>,
    /// In-process hops that brought the request (service chaining), counted on.
    pub chain_depth: u32,
    /// CGI meta-variables; a granted variable of the same name is left out.
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub stdin: Box<dyn StdinStream + Sync>,
    pub stdout: Box<dyn StdoutStream + Sync>,
}

impl CgiState {
    pub fn limits(&mut self) -> &mut InstanceLimits {
        &mut self.limits
    }

    /// The run must be done by `deadline` (the epoch callback reads it).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    pub fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    pub fn memory_bytes(&self) -> usize {
        self.limits.memory_bytes()
    }
}

/// WASI's `notsock` errno: the descriptor is not a socket.
const ERRNO_NOTSOCK: i32 = 57;

/// Links WASI preview 1 (`wasi_snapshot_preview1`), all a CGI program may import. A CGI
/// program has no sockets: the `sock_*` calls answer `notsock` at once (Wasmtime's own
/// versions log a warning per call, which a program could use to flood the log).
pub fn add_cgi_to_linker(linker: &mut wasmtime::Linker<CgiState>) -> anyhow::Result<()> {
    const P1: &str = "wasi_snapshot_preview1";
    wasmtime_wasi::p1::add_to_linker_async(linker, |state: &mut CgiState| &mut state.wasi)?;
    linker.allow_shadowing(true);
    linker.func_wrap(P1, "sock_accept", |_: i32, _: i32, _: i32| ERRNO_NOTSOCK)?;
    linker.func_wrap(
        P1,
        "sock_recv",
        |_: i32, _: i32, _: i32, _: i32, _: i32, _: i32| ERRNO_NOTSOCK,
    )?;
    linker.func_wrap(P1, "sock_send", |_: i32, _: i32, _: i32, _: i32, _: i32| {
        ERRNO_NOTSOCK
    })?;
    linker.func_wrap(P1, "sock_shutdown", |_: i32, _: i32| ERRNO_NOTSOCK)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Puts a run's environment, arguments, stdin and stdout in `wasi`: the `granted`
/// variables, then the CGI ones, which win over a granted variable of the same name except
/// for the `HTTP_*` ones a client's headers make.
pub(crate) fn fill_cgi_context(
    wasi: &mut WasiCtxBuilder,
    granted: &[(String, String)],
    run: CgiRun,
) {
    let from_client = |name: &str| name.starts_with("HTTP_");
    let granted_names: Vec<&str> = granted.iter().map(|(n, _)| n.as_str()).collect();
    let kept = granted
        .iter()
        .filter(|(name, _)| from_client(name) || !run.env.iter().any(|(cgi, _)| cgi == name));
    let cgi = run
        .env
        .iter()
        .filter(|(name, _)| !(from_client(name) && granted_names.contains(&name.as_str())));
    for (name, value) in kept.chain(cgi) {
        wasi.env(name, value);
    }
    wasi.args(&run.args).stdin(run.stdin).stdout(run.stdout);
}

impl ComponentGrants {
    /// A fresh state for one CGI run: the granted environment, the CGI variables (which
    /// win over a granted variable of the same name, except the `HTTP_*` ones a client's
    /// headers make), the granted files, stderr to the log, and `run`'s arguments and
    /// streams. Open handles are capped as for any instance (`limits.host_memory`).
    pub fn cgi_state(&self, run: CgiRun) -> CgiState {
        let request = RequestTag::default();
        request.set(run.request_id.clone(), run.chain_depth);
        let (_, stderr) = GuestLog::pair(self.log_source(), request, self.log_rate.clone());
        let mut wasi = WasiCtxBuilder::new();
        fill_cgi_context(&mut wasi, self.env.vars(), run);
        wasi.stderr(stderr);
        let mut wasi = wasi.build_p1();
        let view = wasi.ctx();
        view.table.set_max_capacity(self.max_resources);
        self.files.prepare(view.ctx);
        CgiState {
            wasi,
            limits: InstanceLimits::new(self.memory_limit),
            deadline: None,
        }
    }
}
