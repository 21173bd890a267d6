//! JavaScript components built with componentize-js (installed by scripts/guest-tools.sh):
//! a WASI 0.2 handler served beside a Rust one, its exceptions contained.

mod common;
use common::{guest, js_guest, Server, TestApp};

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
