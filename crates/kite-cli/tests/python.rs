//! Python components built with componentize-py (installed by scripts/guest-tools.sh):
//! WASI 0.2 and 0.3 handlers served beside each other, with their grants and failures.

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
