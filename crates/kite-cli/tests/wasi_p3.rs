//! WASI 0.3 handlers (`wasi:http/handler@0.3.0`, and the release candidate current SDKs
//! emit) served beside 0.2 components: streaming bodies both ways, trailers, async host
//! calls, grants, and every way a handler can fail, each contained to its request.

mod common;
use bytes::Bytes;
use common::{guest, Server, TestApp};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::time::Duration;

fn service_app(extra: &str) -> TestApp {
    TestApp::new(&format!(
        r#"manifest_version = 1
[app]
name = "p3"

[[route]]
path = "/..."
component = "service"

[[route]]
path = "/rc/..."
component = "rc"

[[route]]
path = "/p2/..."
component = "probe"

[component.service]
source = "{service}"
environment = {{ GREETING = "hello from the manifest" }}
limits = {{ timeout = "2s" }}
{extra}

[component.rc]
source = "{rc}"

[component.probe]
source = "{probe}"
"#,
        service = guest("service").display(),
        rc = guest("service_rc").display(),
        probe = guest("probe").display(),
    ))
}

/// A response read frame by frame: its status, body and trailers.
async fn exchange(
    server: &Server,
    request: http::Request<
        StreamBody<
            impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static,
        >,
    >,
) -> (u16, String, Option<http::HeaderMap>) {
    let response = common::response_of(server.addr, request).await;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let (mut text, mut trailers) = (Vec::new(), None);
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the body ends cleanly");
        match frame.into_data() {
            Ok(data) => text.extend_from_slice(&data),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    (status, String::from_utf8(text).unwrap(), trailers)
}

fn frames(
    frames: Vec<Frame<Bytes>>,
) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + 'static>
{
    StreamBody::new(futures::stream::iter(frames).map(Ok))
}

#[tokio::test]
async fn a_0_3_handler_streams_bodies_and_trailers_both_ways() {
    let app = service_app("");
    let server = Server::start(&app);

    let hello = server.get("/hello").await;
    assert_eq!(hello.status, 200, "{hello:?}");
    assert_eq!(hello.body, "Hello from a WASI 0.3 handler\n");
    assert_eq!(hello.header("content-type"), Some("text/plain"));
    assert!(hello.header("x-kite-request-id").is_some());

    let streamed = server.get("/stream?chunks=5&pause_ms=2").await;
    assert_eq!(
        streamed.body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n",
        "{streamed:?}"
    );
    assert!(!streamed.body_failed);

    let request = http::Request::get("/trailers")
        .header("host", "localhost")
        .header("te", "trailers")
        .body(frames(Vec::new()))
        .unwrap();
    let (status, body, trailers) = exchange(&server, request).await;
    assert_eq!((status, body.as_str()), (200, "a body with trailers\n"));
    let trailers = trailers.expect("the response has trailers");
    assert_eq!(trailers["x-checksum"], "abc123");

    // 64 chunks of 16 KiB echoed as they arrive, and the request's trailers sent back.
    let mut request_trailers = http::HeaderMap::new();
    request_trailers.insert("x-sum", "42".parse().unwrap());
    let mut body_frames: Vec<Frame<Bytes>> = (0..64u8)
        .map(|i| Frame::data(Bytes::from(vec![b'a' + i % 26; 16 << 10])))
        .collect();
    body_frames.push(Frame::trailers(request_trailers));
    let request = http::Request::post("/echo")
        .header("host", "localhost")
        .header("te", "trailers")
        .header("trailer", "x-sum")
        .body(frames(body_frames))
        .unwrap();
    let (status, body, trailers) = exchange(&server, request).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), 64 * (16 << 10));
    assert!(body.starts_with(&"a".repeat(16 << 10)));
    assert!(body.ends_with(&"l".repeat(16 << 10)));
    assert_eq!(trailers.expect("echoed trailers")["x-sum"], "42");
}

#[tokio::test]
async fn release_candidate_0_3_and_0_2_components_serve_side_by_side() {
    let app = service_app("");
    let server = Server::start(&app);
    let (rc, p3, p2) = tokio::join!(
        server.get("/rc/anything"),
        server.get("/hello"),
        server.get("/p2/")
    );
    assert_eq!(
        (rc.status, rc.body.as_str()),
        (200, "Hello from a WASI 0.3 release candidate handler\n")
    );
    assert_eq!(p3.status, 200);
    assert_eq!(p2.status, 200, "{p2:?}");
    // Concurrent requests each get their own instance.
    let requests = (0..40).map(|i| {
        let path = if i % 2 == 0 { "/sleep?ms=30" } else { "/p2/" };
        server.get(path)
    });
    for reply in futures::future::join_all(requests).await {
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

#[tokio::test]
async fn a_0_3_handler_sees_only_its_grants() {
    let backend = Server::start(&TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"p\"\n[component.p]\nsource = \"PROBE\"\n",
    ));
    let app = service_app(&format!(
        "allowed_outbound_hosts = [\"http://{}\", \"http://*.spin.internal\"]",
        backend.addr
    ));
    let server = Server::start(&app);

    let env = server.get("/env?name=GREETING").await;
    assert_eq!(env.body, "GREETING=hello from the manifest\n");
    let host_env = server.get("/env?name=PATH").await;
    assert_eq!(host_env.body, "PATH=\n", "the host's environment leaked");

    let allowed = server
        .get(&format!("/fetch?url=http://{}/", backend.addr))
        .await;
    assert_eq!(allowed.body, "status 200\n", "{allowed:?}");
    // Service chaining, to a 0.2 and to a 0.3 component of the app.
    for callee in ["probe", "rc"] {
        let chained = server
            .get(&format!("/fetch?url=http://{callee}.spin.internal/"))
            .await;
        assert_eq!(chained.body, "status 200\n", "{callee}: {chained:?}");
    }
    let denied = server.get("/fetch?url=http://192.0.2.1/").await;
    assert_eq!(denied.body, "error ErrorCode::HttpRequestDenied\n");
    server.wait_for_log("allowed_outbound_hosts");

    let slept = server.get("/sleep?ms=20").await;
    assert_eq!(slept.body, "slept 20 ms\n");
}

#[tokio::test]
async fn every_failure_of_a_0_3_handler_stays_with_its_request() {
    let app = service_app("");
    let server = Server::start(&app);

    let trap = server.get("/trap").await;
    assert_eq!(trap.status, 500, "{trap:?}");
    let id = trap.header("x-kite-request-id").unwrap().to_string();
    assert!(trap.body.contains(&id));
    // The trap's report spans lines (its wasm backtrace); the request id closes it.
    let log = server.wait_for_log("the component trapped");
    let report = log.split("the component trapped").nth(1).unwrap();
    assert!(report.contains(&format!("request_id={id}")), "{log}");

    let refused = server.get("/error-code").await;
    assert_eq!(refused.status, 500);
    server.wait_for_log("refused on purpose");

    let broken = server.get("/trap-mid-body").await;
    assert_eq!(broken.status, 200);
    assert!(
        broken.body_failed,
        "a trap mid-body must not end the body cleanly"
    );

    for path in ["/loop", "/hang"] {
        let late = server.get(path).await;
        assert_eq!(late.status, 504, "{path}: {late:?}");
    }

    let still = server.get("/hello").await;
    assert_eq!(still.status, 200, "the server must go on after failures");
}

#[tokio::test]
async fn work_a_0_3_handler_spawns_after_responding_runs_to_its_end() {
    let app = service_app("");
    let server = Server::start(&app);
    let reply = server.get("/background").await;
    assert_eq!(reply.status, 200);
    assert!(!reply.body_failed);
    let id = reply.header("x-kite-request-id").unwrap().to_string();
    server.expect_log_line("the background task's line", |line| {
        line.contains("background work done") && line.contains(&id)
    });
}

#[tokio::test]
async fn a_response_body_that_never_ends_is_stopped_at_the_deadline() {
    let app = service_app("");
    let server = Server::start(&app);
    // A billion chunks: the body is still streaming when the 2 s deadline comes.
    let request = http::Request::get("/stream?chunks=1000000000&pause_ms=0")
        .header("host", "localhost")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = common::response_of(server.addr, request).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return true;
            }
        }
        false
    })
    .await
    .expect("the body must end at the deadline");
    assert!(ended, "a body cut at the deadline must end with an error");
    server.wait_for_log("ran past its 2s deadline");
}

#[test]
fn an_unsupported_0_3_release_candidate_is_refused_with_what_to_do() {
    let wasm = wat::parse_str(
        r#"(component
            (import "wasi:http/types@0.3.0-rc-2026-01-06" (instance (export "f" (func))))
        )"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.wasm"), wasm).unwrap();
    let app = TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"old\"\n[[route]]\npath = \"/...\"\ncomponent = \"old\"\n[component.old]\nsource = \"{}\"\n",
        dir.path().join("old.wasm").display()
    ));
    let error = common::up_fails(&app, &[]);
    assert!(
        error.contains("wasi:http/types@0.3.0-rc-2026-01-06")
            && error.contains("0.3.0-rc-2026-03-15")
            && error.contains("rebuild"),
        "{error}"
    );
}

fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[tokio::test]
async fn one_huge_stdout_write_is_bounded_in_host_memory_and_log() {
    let app = service_app("");
    let server = Server::start(&app);
    assert_eq!(server.get("/hello").await.status, 200);
    let before = peak_rss(server.pid());
    // 64 MiB in one write: control bytes (each escaped as six in a log line), then
    // newlines (one record each).
    for byte in [1, b'\n'] {
        let reply = server.get(&format!("/flood?mib=64&byte={byte}")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // The guest's own 64 MiB buffer lives in its linear memory; the host must add little.
    let growth = peak_rss(server.pid()).saturating_sub(before);
    assert!(
        growth < 200 << 20,
        "peak memory grew by {} MiB",
        growth >> 20
    );
    let log = server.wait_for_log("the rest of this request's output is dropped");
    assert!(log.len() < 2 << 20, "the log holds {} bytes", log.len());
    assert_eq!(server.get("/hello").await.status, 200);
}

/// An HTTP server on loopback that answers every request with a response head and one
/// chunk, then sends nothing more while keeping the connection open.
async fn stalling_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = socket.read(&mut head).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nstart\r\n",
                    )
                    .await;
                tokio::time::sleep(Duration::from_secs(600)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upstream_body_handed_through_still_ends_at_the_deadline() {
    let upstream = stalling_upstream().await;
    let app = service_app(&format!("allowed_outbound_hosts = [\"http://{upstream}\"]"));
    let server = Server::start(&app);
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        server.get(&format!("/proxy?url=http://{upstream}/")),
    )
    .await
    .expect("the response must end (with an error) at the 2 s deadline");
    assert_eq!(reply.status, 200);
    assert!(reply.body_failed, "{reply:?}");
}
