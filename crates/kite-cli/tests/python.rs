//! Python components built with componentize-py (installed by scripts/guest-tools.sh):
//! WASI 0.2 and 0.3 handlers served beside each other, with their grants and failures, and
//! an app written with Spin's Python SDK.

mod common;
use common::{python_guest, Server, TestApp};

fn python_app() -> TestApp {
    TestApp::new(&format!(
        r#"manifest_version = 1
[app]
name = "python"

[[route]]
path = "/p2/..."
component = "hello"

[[route]]
path = "/p3/..."
component = "service"

[component.hello]
source = "{hello}"
environment = {{ GREETING = "Hi" }}

[component.service]
source = "{service}"
environment = {{ GREETING = "Hey" }}
"#,
        hello = python_guest("hello", "wasi:http/proxy@0.2.6").display(),
        service = python_guest("service", "wasi:http/service@0.3.0").display(),
    ))
}

#[tokio::test]
async fn python_components_answer_as_wasi_0_2_and_0_3_handlers() {
    let app = python_app();
    let server = Server::start(&app);
    let p2 = server.get("/p2/x?y=1").await;
    assert_eq!(
        (p2.status, p2.body.as_str()),
        (200, "Hi from Python at /p2/x?y=1\n")
    );
    let p3 = server.get("/p3/z").await;
    assert_eq!(
        (p3.status, p3.body.as_str()),
        (200, "Hey from Python (WASI 0.3) at /p3/z\n")
    );
    assert_eq!(p3.header("content-type"), Some("text/plain"));
    // Fresh instances: many requests, each answered alike.
    let replies = futures::future::join_all((0..20).map(|i| {
        let path = if i % 2 == 0 { "/p2/n" } else { "/p3/n" };
        server.get(path)
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
}

#[tokio::test]
async fn a_python_exception_fails_only_its_request() {
    let app = python_app();
    let server = Server::start(&app);
    let boom = server.get("/p2/boom").await;
    assert_eq!(boom.status, 500, "{boom:?}");
    server.wait_for_log("the Python handler failed on purpose");
    server.wait_for_log("the component trapped");
    let hello = server.get("/p2/ok").await;
    assert_eq!(hello.status, 200);
}

#[tokio::test]
async fn a_second_start_of_a_python_app_loads_it_from_the_compile_cache() {
    let app = python_app();
    let cache = app.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    let first = Server::start_with(&app, &args);
    first.wait_for_log("component `hello` compiled");
    drop(first);
    let second = Server::start_with(&app, &args);
    let log = second.wait_for_log("component `service` loaded from cache");
    assert!(log.contains("component `hello` loaded from cache"), "{log}");
    assert_eq!(second.get("/p3/again").await.status, 200);
}

#[tokio::test]
async fn a_python_app_written_with_spin_s_sdk_runs_unchanged_from_its_spin_toml() {
    // Spin's Python SDK 5 builds for `spin:up/http-trigger@4.1.0`: a WASI 0.3 handler that
    // imports every interface of Spin 4 (0.2, the 0.3 release candidate and 0.3.0 alike).
    let source = python_guest("spin", "spin:up/http-trigger@4.1.0");
    let dir = common::spin_app(&source, "hello", "");
    let server = Server::start_at(dir.path(), &[]);
    let hello = server.get("/hello").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, "Hello from Python on Spin 4\n")
    );
    assert_eq!(server.get("/kv?key=a&value=1").await.body, "get=1 keys=a\n");
    assert_eq!(
        server.get("/kv?key=b&value=2").await.body,
        "get=2 keys=a,b\n"
    );
    assert_eq!(
        server.get("/sqlite?note=one").await.body,
        "rowid=1 notes=1:one\n"
    );
    assert_eq!(
        server.get("/sqlite?note=two").await.body,
        "rowid=2 notes=1:one,2:two\n"
    );
    assert_eq!(
        server.get("/variable?name=greeting").await.body,
        "greeting=hello\n"
    );
    assert_eq!(
        server.get("/variable?name=missing").await.body,
        "error: Error_Undefined\n"
    );
    assert_eq!(server.get("/elsewhere").await.status, 404);
}
