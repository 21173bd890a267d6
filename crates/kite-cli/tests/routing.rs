//! Routing over a real server: the most specific route wins, unknown paths get 404, and
//! the guest sees the request as sent.

mod common;
use common::{Server, TestApp};

fn routed_app() -> TestApp {
    let mut manifest = String::new();
    for (path, name) in [
        ("/...", "root-wildcard"),
        ("/users/...", "users-wildcard"),
        ("/users/:id", "users-param"),
        ("/users/me", "users-exact"),
    ] {
        manifest.push_str(&format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"{name}\"\n"
        ));
    }
    for name in [
        "root-wildcard",
        "users-wildcard",
        "users-param",
        "users-exact",
    ] {
        manifest.push_str(&format!(
            "[component.{name}]\nsource = \"PROBE\"\nenvironment = {{ ROUTE = \"{name}\" }}\n"
        ));
    }
    TestApp::probe(&manifest)
}

#[tokio::test]
async fn the_most_specific_route_wins() {
    let app = routed_app();
    let server = Server::start(&app);
    for (path, expected) in [
        ("/users/me", "users-exact"),
        ("/users/42", "users-param"),
        ("/users/42/posts", "users-wildcard"),
        ("/users", "users-wildcard"),
        ("/elsewhere", "root-wildcard"),
        ("/", "root-wildcard"),
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.header("x-probe-route"), Some(expected), "{path}");
    }
    let banner = server.stdout();
    let exact = banner.find("/users/me").unwrap();
    let root = banner.find("/...").unwrap();
    assert!(
        exact < root,
        "route table lists the most specific first:\n{banner}"
    );
}

#[tokio::test]
async fn no_route_is_404_with_a_request_id() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/hello\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"PROBE\"\n",
    );
    let server = Server::start(&app);
    let reply = server.get("/nothing/here").await;
    assert_eq!(reply.status, 404);
    let id = reply.header("x-kite-request-id").unwrap().to_string();
    assert!(reply.body.contains(&id), "{}", reply.body);
    assert_eq!(server.get("/hello").await.body, "Hello from Kite");
    let log = server.wait_for_log("GET /nothing/here 404");
    assert!(log.contains(&id), "{log}");
}

#[tokio::test]
async fn the_guest_sees_the_request_as_sent() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\n",
    );
    let server = Server::start(&app);
    let request = http::Request::builder()
        .method("PUT")
        .uri("/a/b/info?x=1&y=two")
        .header("host", "kite.test:8080")
        .header("x-custom", "value")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"data",
        )))
        .unwrap();
    let reply = common::send_request(server.addr, request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("method: Method::Put"), "{}", reply.body);
    assert!(
        reply.body.contains("path: /a/b/info?x=1&y=two"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("authority: kite.test:8080"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("scheme: Some(Scheme::Http)"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("header x-custom: value"),
        "{}",
        reply.body
    );
    let log = server.wait_for_log("PUT /a/b/info?x=1&y=two 200");
    assert!(log.contains("component=probe"), "{log}");
}
