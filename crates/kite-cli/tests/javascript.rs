//! JavaScript components built with componentize-js and componentize-qjs (installed by
//! scripts/guest-tools.sh): WASI 0.2 and 0.3 handlers served beside a Rust one, their
//! exceptions contained.

mod common;
use common::{guest, js_guest, js_qjs_guest, Server, TestApp};

#[tokio::test]
async fn a_javascript_component_answers_and_its_exception_fails_only_its_request() {
    let app = TestApp::new(&format!(
        r#"manifest_version = 1
[app]
name = "javascript"

[[route]]
path = "/js/..."
component = "js"

[[route]]
path = "/rust/..."
component = "probe"

[component.js]
source = "{js}"

[component.probe]
source = "{probe}"
"#,
        js = js_guest("hello", "wasi:http/proxy@0.2.6").display(),
        probe = guest("probe").display(),
    ));
    let server = Server::start(&app);
    let hello = server.get("/js/x?y=1").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, "Hello from JavaScript at /js/x?y=1\n")
    );
    let boom = server.get("/js/boom").await;
    assert_eq!(boom.status, 500, "{boom:?}");
    server.wait_for_log("the component trapped");
    let replies = futures::future::join_all((0..10).map(|i| {
        let path = if i % 2 == 0 { "/js/n" } else { "/rust/" };
        server.get(path)
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
}

#[tokio::test]
async fn a_javascript_0_3_handler_streams_its_body_and_reads_the_request_s() {
    let app = TestApp::new(&format!(
        r#"manifest_version = 1
[app]
name = "javascript-p3"

[[route]]
path = "/p3/..."
component = "service"

[[route]]
path = "/p2/..."
component = "hello"

[component.service]
source = "{service}"

[component.hello]
source = "{hello}"
"#,
        service = js_qjs_guest("service").display(),
        hello = js_guest("hello", "wasi:http/proxy@0.2.6").display(),
    ));
    let server = Server::start(&app);
    let hello = server.get("/p3/x?y=1").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, "Hello from JavaScript (WASI 0.3) at /p3/x?y=1\n")
    );
    assert_eq!(hello.header("content-type"), Some("text/plain"));
    let body = "z".repeat(200_000);
    let (status, text) = server.post("/p3/upload", &body).await;
    assert_eq!((status, text.as_str()), (200, "read 200000 bytes\n"));
    let boom = server.get("/p3/boom").await;
    assert_eq!(boom.status, 500, "{boom:?}");
    server.wait_for_log("the JavaScript handler failed on purpose");
    let replies = futures::future::join_all((0..10).map(|i| {
        let path = if i % 2 == 0 { "/p3/n" } else { "/p2/n" };
        server.get(path)
    }))
    .await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
}
