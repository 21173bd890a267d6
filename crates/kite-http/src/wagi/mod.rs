//! The Wagi executor: a WASI preview 1 program run as a CGI script (RFC 3875) in a fresh
//! instance per request. The request goes in its environment, arguments and stdin; the
//! response is read from its stdout: a header block, then a body streamed as it is written.

mod cgi_env;
mod cgi_response;
mod program;

pub(crate) use cgi_env::CgiRoute;

use crate::executor::{Executor, GuestRequest, InstanceHold, Outcome};
use crate::failure::{error_response, FailureCounts, GuestFailure};
use crate::response_body::GuardedBody;
use crate::wasi_http::HandlerOutcome;
use bytes::Bytes;
use cgi_response::{find_head_end, parse_head, shown, MAX_HEAD_BYTES};
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use kite_app::{ComponentSpec, WagiSettings};
use kite_host::{AppResources, CgiRun, CgiState, ComponentGrants, InstanceState};
use program::{Bounds, Program, RunState};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tracing::Instrument;
use wasmtime::{ExternType, Linker, Module};
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::Error as HttpError;

/// Bytes of a program's output (or a streamed request body) held between it and the other
/// side; past this the writer waits.
const PIPE_BYTES: usize = 64 * 1024;

/// The most bytes of response body read at once.
const CHUNK_BYTES: usize = 16 * 1024;

/// The most bytes a module's `_routes` may print, and the most routes it may declare.
const MAX_ROUTES_OUTPUT: usize = 64 * 1024;
const MAX_DECLARED_ROUTES: usize = 256;

pub(crate) struct WagiExecutor {
    component: Arc<str>,
    engine: wasmtime::Engine,
    program: Program,
    grants: Arc<ComponentGrants>,
    settings: WagiSettings,
    /// `settings.entrypoint`, shared with every run.
    entrypoint: Arc<str>,
    timeout: Duration,
    failures: Arc<FailureCounts>,
}

impl WagiExecutor {
    /// A WASI 0.2 command component (`wasi:cli/run`) as the CGI program. It is linked with
    /// everything a component may import, and gets what its grants give.
    pub(crate) fn new_command(
        spec: &ComponentSpec,
        component: &wasmtime::component::Component,
        linker: &wasmtime::component::Linker<InstanceState>,
        resources: &AppResources,
        settings: &WagiSettings,
        failures: Arc<FailureCounts>,
    ) -> anyhow::Result<Self> {
        let what = format!("component `{}` ({})", spec.id, spec.source.display());
        if settings.entrypoint != WagiSettings::default().entrypoint {
            anyhow::bail!(
                "{what} is a component: it is run through `wasi:cli/run`, so the Wagi `entrypoint` ({:?}) cannot choose another function; remove it",
                settings.entrypoint
            );
        }
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| anyhow::anyhow!("{what} cannot be linked: {e:#}"))?;
        let pre = CommandPre::new(pre).map_err(|e| {
            anyhow::anyhow!(
                "{what} is not a command: a CGI program must export `wasi:cli/run` (a `fn main` built for `wasm32-wasip2`) ({e:#})"
            )
        })?;
        Ok(WagiExecutor {
            component: spec.id.as_str().into(),
            engine: component.engine().clone(),
            program: Program::Command(pre),
            grants: Arc::new(ComponentGrants::validate(spec, resources)?),
            settings: settings.clone(),
            entrypoint: settings.entrypoint.as_str().into(),
            timeout: spec.limits.timeout,
            failures,
        })
    }

    /// A WASI preview 1 core module as the CGI program.
    pub(crate) fn new(
        spec: &ComponentSpec,
        module: &Module,
        linker: &Linker<CgiState>,
        resources: &AppResources,
        settings: &WagiSettings,
        failures: Arc<FailureCounts>,
    ) -> anyhow::Result<Self> {
        let what = format!("component `{}` ({})", spec.id, spec.source.display());
        if let Some(import) = module
            .imports()
            .find(|import| import.module() == "wasi_experimental_http")
        {
            anyhow::bail!(
                "{what} imports `wasi_experimental_http::{}`, Wagi's experimental outbound HTTP, which Kite does not provide; a CGI program in Kite has no network",
                import.name()
            );
        }
        match module.get_export(&settings.entrypoint) {
            Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => {}
            Some(_) => anyhow::bail!(
                "{what}: its export `{}` (the Wagi `entrypoint`) is not a function without parameters and results",
                settings.entrypoint
            ),
            None => {
                let functions: Vec<&str> = module
                    .exports()
                    .filter(|e| matches!(e.ty(), ExternType::Func(_)))
                    .map(|e| e.name())
                    .collect();
                anyhow::bail!(
                    "{what} exports no function `{}` (the Wagi `entrypoint`); it exports {}",
                    settings.entrypoint,
                    if functions.is_empty() {
                        "no functions".to_string()
                    } else {
                        functions.join(", ")
                    }
                );
            }
        }
        let pre = linker.instantiate_pre(module).map_err(|e| {
            anyhow::anyhow!(
                "{what} cannot be run as a CGI program: {e:#} (a Wagi program may import only WASI preview 1, `wasi_snapshot_preview1`)"
            )
        })?;
        Ok(WagiExecutor {
            component: spec.id.as_str().into(),
            engine: module.engine().clone(),
            program: Program::Module(pre),
            grants: Arc::new(ComponentGrants::validate(spec, resources)?),
            settings: settings.clone(),
            entrypoint: settings.entrypoint.as_str().into(),
            timeout: spec.limits.timeout,
            failures,
        })
    }
}

#[async_trait::async_trait]
impl Executor for WagiExecutor {
    async fn execute(
        &self,
        request: GuestRequest,
        request_id: &Arc<str>,
        hold: InstanceHold,
    ) -> Outcome {
        // One deadline for the whole request, reading a body without a length included.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (mut parts, body) = request.into_parts();
        let route = parts
            .extensions
            .remove::<CgiRoute>()
            .unwrap_or_else(|| CgiRoute::whole_path(parts.uri.path()));
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if percent_encoding::percent_decode_str(&route.raw_path_info).any(|b| b.is_ascii_control())
        {
            return Outcome::Response(error_response(
                StatusCode::BAD_REQUEST,
                request_id,
                "the path holds an encoded control character",
            ));
        }
        // CGI says how long the body is; without a length the body is read first (within
        // the component's body limit and the request's deadline) to learn it. A body that
        // fails while the program reads it stops the program.
        let (body_failed, body_failure) = tokio::sync::mpsc::channel(1);
        let (stdin, length) = match declared {
            Some(length) => (
                AsyncStdinStream::new(stream_body(body, body_failed)),
                length,
            ),
            None => match tokio::time::timeout_at(deadline, body.collect()).await {
                Ok(Ok(collected)) => {
                    let bytes = collected.to_bytes();
                    let length = bytes.len() as u64;
                    (AsyncStdinStream::new(std::io::Cursor::new(bytes)), length)
                }
                Ok(Err(_)) => return Outcome::Failed(None),
                Err(_) => return Outcome::Failed(Some(GuestFailure::Deadline(self.timeout))),
            },
        };
        let env = cgi_env::meta_variables(&parts, &route, length);
        let args = cgi_env::argv(&self.settings.argv, parts.uri.path(), parts.uri.query());
        // A duplex pipe, not a simplex one: its reader sees the end as soon as the writer
        // is dropped (with the instance), without the writer having to shut it down.
        let (mut stdout, stdout_writer) = tokio::io::duplex(PIPE_BYTES);
        let chain_depth = parts
            .extensions
            .get::<kite_host::ChainDepth>()
            .map_or(0, |depth| depth.0);
        let run = CgiRun {
            request_id: request_id.clone(),
            chain_depth,
            env,
            args,
            stdin: Box::new(stdin),
            stdout: Box::new(AsyncStdoutStream::new(PIPE_BYTES, stdout_writer)),
        };
        let state = match &self.program {
            Program::Module(_) => RunState::Module(self.grants.cgi_state(run)),
            Program::Command(_) => match self.grants.command_state(run) {
                Ok(state) => RunState::Command(state),
                Err(e) => {
                    tracing::error!(component = %self.component, request_id = %request_id, "preparing the instance failed: {e:#}");
                    return Outcome::Failed(None);
                }
            },
        };
        let (done, outcome) = oneshot::channel();
        self.spawn_run(
            state,
            request_id.clone(),
            hold,
            deadline,
            body_failure,
            done,
        );

        let mut output = Vec::with_capacity(1024);
        let mut scanned = 0;
        // Why the output is not a CGI response, and whether the program has ended.
        let (read_error, ended) = loop {
            let found = find_head_end(&output, scanned);
            scanned = output.len();
            if let Some((head_end, body_start)) = found {
                return match parse_head(&output[..head_end]) {
                    Ok(head) => {
                        let first = Bytes::copy_from_slice(&output[body_start..]);
                        let body = GuardedBody::new(body_stream(first, stdout), outcome);
                        let mut response = Response::new(body.boxed_unsync());
                        *response.status_mut() = head.status;
                        *response.headers_mut() = head.headers;
                        Outcome::Response(response)
                    }
                    Err(problem) => self.not_cgi(request_id, &problem, &output),
                };
            }
            if output.len() > MAX_HEAD_BYTES {
                break (format!("it wrote more than {MAX_HEAD_BYTES} bytes without ending its header block with a blank line"), false);
            }
            let mut chunk = [0u8; 8192];
            match stdout.read(&mut chunk).await {
                Ok(0) => {
                    break (
                        "it ended without a blank line after its header block".to_string(),
                        true,
                    )
                }
                Ok(n) => output.extend_from_slice(&chunk[..n]),
                Err(e) => break (format!("its output could not be read: {e}"), false),
            }
        };
        drop(stdout);
        if !ended {
            // Still running: answering drops `outcome`, which stops it.
            return self.not_cgi(request_id, &read_error, &output);
        }
        match outcome.await {
            // The program failed first: that is the story (already logged).
            Ok(Err(failure)) => Outcome::Failed(Some(failure)),
            _ => self.not_cgi(request_id, &read_error, &output),
        }
    }
}

impl WagiExecutor {
    /// The sub-routes the module declares by Wagi's `_routes` convention: if it exports
    /// `_routes`, that is run once, now, with no request and under the component's limits,
    /// and each line it prints, `path [entrypoint]`, is a route below the module's own
    /// served by that exported function (this route's entrypoint if the line names none).
    pub(crate) fn declared_routes(&self) -> anyhow::Result<Vec<(String, String)>> {
        let Program::Module(pre) = &self.program else {
            return Ok(Vec::new());
        };
        let declares = pre
            .module()
            .get_export("_routes")
            .is_some_and(|e| matches!(e, ExternType::Func(_)));
        if !declares {
            return Ok(Vec::new());
        }
        let output = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(MAX_ROUTES_OUTPUT);
        let state = self.grants.cgi_state(CgiRun {
            request_id: "-".into(),
            chain_depth: 0,
            env: Vec::new(),
            args: Vec::new(),
            stdin: Box::new(wasmtime_wasi::p2::pipe::ClosedInputStream),
            stdout: Box::new(output.clone()),
        });
        let (engine, program, timeout) = (self.engine.clone(), self.program.clone(), self.timeout);
        // Run on a thread of its own with its own runtime: loading may happen inside or
        // outside one. The same run as a request's, with no body and nobody to go away.
        let ran = std::thread::scope(|scope| {
            scope
                .spawn(move || -> anyhow::Result<HandlerOutcome> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    Ok(runtime.block_on(async move {
                        let (_no_body_failure, body_failure) = tokio::sync::mpsc::channel(1);
                        let (mut done, _waiting) = oneshot::channel();
                        let bounds = Bounds {
                            deadline: tokio::time::Instant::now() + timeout,
                            timeout,
                            body_failure,
                            done: &mut done,
                        };
                        program
                            .run(&engine, RunState::Module(state), "_routes", bounds)
                            .await
                    }))
                })
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("running it failed")))
        });
        let ran = ran.and_then(|outcome| {
            outcome.map_err(|failure| match failure {
                GuestFailure::Trap(e) => anyhow::anyhow!("{e:#}"),
                GuestFailure::Exit(status) => anyhow::anyhow!("it exited with status {status}"),
                _ => anyhow::anyhow!("it ran past its deadline"),
            })
        });
        ran.map_err(|e| {
            anyhow::anyhow!(
                "component `{}`: its `_routes` function (Wagi's way to declare sub-routes) failed: {e}",
                self.component
            )
        })?;
        let text = String::from_utf8_lossy(&output.contents()).into_owned();
        let mut routes: Vec<(String, String)> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if routes.len() == MAX_DECLARED_ROUTES {
                anyhow::bail!(
                    "component `{}`: its `_routes` declares more than {MAX_DECLARED_ROUTES} routes",
                    self.component
                );
            }
            if !line
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
            {
                anyhow::bail!(
                    "component `{}`: its `_routes` printed {}, which holds characters other than visible ASCII",
                    self.component,
                    cgi_response::shown(line.as_bytes())
                );
            }
            let mut words = line.split_whitespace();
            let path = words.next().unwrap_or_default();
            let entrypoint = words.next().unwrap_or(&self.settings.entrypoint);
            if !path.starts_with('/') || words.next().is_some() {
                anyhow::bail!(
                    "component `{}`: its `_routes` printed {}, not `/path [entrypoint]`",
                    self.component,
                    cgi_response::shown(line.as_bytes())
                );
            }
            match pre.module().get_export(entrypoint) {
                Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => {}
                _ => anyhow::bail!(
                    "component `{}`: its `_routes` names `{entrypoint}` for {path}, which it does not export as a function without parameters and results",
                    self.component
                ),
            }
            if !routes.iter().any(|(known, _)| known == path) {
                routes.push((path.to_string(), entrypoint.to_string()));
            }
        }
        Ok(routes)
    }

    /// Runs the program in a fresh instance within the deadline; the outcome goes to `done`
    /// once the instance (and so the program's stdout) is gone.
    /// It is stopped early if the request body fails while the program reads it, or if
    /// nobody waits for the outcome any more (the client went away).
    fn spawn_run(
        &self,
        state: RunState,
        request_id: Arc<str>,
        hold: InstanceHold,
        deadline: tokio::time::Instant,
        body_failure: tokio::sync::mpsc::Receiver<()>,
        mut done: oneshot::Sender<HandlerOutcome>,
    ) {
        let (engine, program) = (self.engine.clone(), self.program.clone());
        let failures = self.failures.clone();
        let (component, entrypoint, timeout) = (
            self.component.clone(),
            self.entrypoint.clone(),
            self.timeout,
        );
        tokio::spawn(
            async move {
                let bounds = Bounds {
                    deadline,
                    timeout,
                    body_failure,
                    done: &mut done,
                };
                let outcome = program.run(&engine, state, &entrypoint, bounds).await;
                if let Err(failure) = &outcome {
                    failure.report(&component, &request_id, &failures);
                }
                drop(hold);
                let _ = done.send(outcome);
            }
            .in_current_span(),
        );
    }

    /// 500 for output that is not a CGI response, with one log line saying why and how the
    /// output began.
    fn not_cgi(&self, request_id: &str, problem: &str, output: &[u8]) -> Outcome {
        tracing::error!(
            component = %self.component, request_id = %request_id,
            "the program's output is not a CGI response: {problem}; it began {}",
            shown(output)
        );
        Outcome::Response(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            request_id,
            "the program's output is not a CGI response (a header block, a blank line, the body)",
        ))
    }
}

impl CgiRoute {
    /// A request with no route (sent by another component): the whole path is its path.
    fn whole_path(path: &str) -> CgiRoute {
        CgiRoute {
            matched_route: "/...".into(),
            script_name: "".into(),
            raw_path_info: path.to_string(),
            client: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }
}

/// The request body as the program's stdin, copied through a pipe as the program reads. If
/// the body fails (too large, stalled), `failed` is told rather than the program seeing an
/// ordinary end of its input.
fn stream_body<B>(
    body: B,
    failed: tokio::sync::mpsc::Sender<()>,
) -> impl AsyncRead + Send + Sync + 'static
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Send,
{
    let (reader, mut writer) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                let _ = failed.try_send(());
                // The pipe is held open until the run is over (it drops the receiver), so
                // the program never reads an early end.
                failed.closed().await;
                return;
            };
            if let Ok(data) = frame.into_data() {
                // The program stopped reading (it ended): nothing more to copy.
                if writer.write_all(&data).await.is_err() {
                    return;
                }
            }
        }
        let _ = writer.shutdown().await;
    });
    reader
}

/// The response body: what came after the header block, then the rest of stdout as the
/// program writes it.
fn body_stream(first: Bytes, stdout: tokio::io::DuplexStream) -> HyperOutgoingBody {
    let rest = futures::stream::unfold(stdout, |mut stdout| async move {
        let mut chunk = bytes::BytesMut::with_capacity(CHUNK_BYTES);
        match stdout.read_buf(&mut chunk).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(chunk.freeze()), stdout)),
            Err(e) => Some((Err(HttpError::InternalError(Some(e.to_string()))), stdout)),
        }
    });
    let first = futures::stream::iter((!first.is_empty()).then_some(Ok(first)));
    StreamBody::new(
        first
            .chain(rest)
            .map(|chunk| chunk.map(http_body::Frame::data)),
    )
    .boxed_unsync()
}
