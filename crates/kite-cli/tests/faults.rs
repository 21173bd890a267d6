//! A misbehaving guest fails only its own request: traps, infinite loops and memory bombs
//! get a 5xx with a request id while concurrent healthy requests succeed.

mod common;
use common::{Server, TestApp};
use std::time::{Duration, Instant};

fn app(limits: &str) -> TestApp {
    TestApp::probe(&format!(
        "[[route]]\npath = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"PROBE\"\nlimits = {{ {limits} }}\n"
    ))
}

#[tokio::test]
async fn a_trap_fails_only_its_request() {
    let app = app("timeout = \"10s\"");
    let server = Server::start(&app);
    let mut healthy = Vec::new();
    for _ in 0..20 {
        healthy.push(tokio::spawn(common::send(
            server.addr,
            http::Method::GET,
            "/hello",
            bytes::Bytes::new(),
        )));
    }
    let trapped = server.get("/trap").await;
    assert_eq!(trapped.status, 500, "{}", trapped.body);
    let id = trapped.header("x-kite-request-id").unwrap().to_string();
    assert!(trapped.body.contains(&id));
    for reply in futures::future::join_all(healthy).await {
        let reply = reply.unwrap();
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "Hello from Kite")
        );
    }
    let log = server.wait_for_log("GET /trap 500");
    assert!(log.contains("the component trapped"), "{log}");
    assert!(log.contains("the probe was asked to trap"), "{log}");
    assert!(
        log.contains(&id),
        "the trap is logged with its request id:\n{log}"
    );
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn an_infinite_loop_is_cut_at_the_deadline() {
    let app = app("timeout = \"1s\"");
    let server = Server::start(&app);
    let started = Instant::now();
    let looping = tokio::spawn(common::send(
        server.addr,
        http::Method::GET,
        "/loop",
        bytes::Bytes::new(),
    ));
    // While one instance spins, others are served.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..10 {
        let reply = server.get("/hello").await;
        assert_eq!(reply.status, 200);
    }
    assert!(!looping.is_finished(), "the loop should still be running");
    let reply = looping.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(reply.body.contains("deadline"), "{}", reply.body);
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let log = server.wait_for_log("GET /loop 504");
    assert!(log.contains("deadline and was stopped"), "{log}");
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn a_memory_bomb_is_refused_inside_the_guest() {
    let app = app("memory = \"32MiB\"");
    let server = Server::start(&app);
    let bomb = server.get("/alloc?mb=64").await;
    assert_eq!(bomb.status, 500, "{}", bomb.body);
    let huge = server.get("/alloc?mb=100000").await;
    assert_eq!(huge.status, 500, "{}", huge.body);
    let fine = server.get("/alloc?mb=8").await;
    assert_eq!((fine.status, fine.body.as_str()), (200, "allocated 8 MiB"));
    let rss = common::rss_bytes(server.pid());
    assert!(rss < 512 << 20, "host memory stays bounded: {rss} bytes");
}

#[tokio::test]
async fn a_slow_guest_waiting_on_io_is_cut_at_the_deadline() {
    let app = app("timeout = \"500ms\"");
    let server = Server::start(&app);
    let reply = server.get("/sleep?ms=5000").await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert_eq!(server.get("/sleep?ms=10").await.status, 200);
}

#[tokio::test]
async fn a_host_resource_bomb_is_refused() {
    let app = app("timeout = \"20s\"");
    let server = Server::start(&app);
    let fine = server.get("/handles?n=100").await;
    assert_eq!(
        (fine.status, fine.body.as_str()),
        (200, "holding 100 handles")
    );
    // 1,000,000 header sets of 8 KiB would be 8 GB of host memory.
    let bomb = server.get("/handles?n=1000000").await;
    assert_eq!(bomb.status, 500, "{}", bomb.body);
    let rss = common::rss_bytes(server.pid());
    assert!(
        rss < 1 << 30,
        "host memory stays bounded: {} MiB",
        rss >> 20
    );
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn past_the_instance_limit_requests_get_503() {
    let app = app("timeout = \"10s\"");
    let server = Server::start_with(&app, &["--max-instances", "1", "--no-cache"]);
    let busy = tokio::spawn(common::send(
        server.addr,
        http::Method::GET,
        "/sleep?ms=1500",
        bytes::Bytes::new(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = server.get("/hello").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(server.get("/hello").await.status, 200);
}

#[tokio::test]
async fn instances_built_ahead_give_their_slots_to_requests() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/one/...\"\ncomponent = \"one\"\n[[route]]\npath = \"/...\"\ncomponent = \"other\"\n\
         [component.one]\nsource = \"PROBE\"\n[component.other]\nsource = \"PROBE\"\n",
    );
    let server = Server::start_with(&app, &["--max-instances", "1"]);
    for path in ["/one/hello", "/hello", "/one/hello", "/hello"] {
        // After each response an instance of that component is built ahead and holds the
        // only slot; the next request, for the other component, must still be served.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    // Back to back: the previous request's instance may not be dropped yet when the next
    // one arrives; it waits for the slot instead of being refused.
    for i in 0..60 {
        let path = if i % 3 == 0 { "/one/hello" } else { "/hello" };
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "request {i}, {path}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_component_past_its_max_concurrency_gets_503_and_others_do_not() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/one/...\"\ncomponent = \"one\"\n[[route]]\npath = \"/...\"\ncomponent = \"other\"\n\
         [component.one]\nsource = \"PROBE\"\nlimits = { max_concurrency = 1 }\n[component.other]\nsource = \"PROBE\"\n",
    );
    let server = Server::start(&app);
    let busy = tokio::spawn(common::send(
        server.addr,
        http::Method::GET,
        "/one/sleep?ms=1500",
        bytes::Bytes::new(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = server.get("/one/hello").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("max_concurrency"), "{}", refused.body);
    assert_eq!(
        server.get("/hello").await.status,
        200,
        "other components are not limited"
    );
    assert_eq!(busy.await.unwrap().status, 200);
    assert_eq!(
        server.get("/one/hello").await.status,
        200,
        "the slot is free again"
    );
}
