//! The standard `wasi:keyvalue@0.2.0-draft2` interface (store, atomics, batch) through a
//! real guest, with the same expectations on an SQLite store and on a real Redis server.

mod common;
use common::{RedisServer, Server, TestApp};
use std::net::SocketAddr;

/// An app whose component `c` is granted `default` and `cache`; `cache` is whatever
/// `cache_backend` (a runtime-config table body) says.
fn app(cache_backend: &str) -> TestApp {
    let app = TestApp::probe(
        "[[route]]\npath = \"/stranger/...\"\ncomponent = \"stranger\"\n\
         [[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nkey_value_stores = [\"default\", \"cache\"]\n\
         [component.stranger]\nsource = \"PROBE\"\n",
    );
    std::fs::write(
        app.path().join("runtime.toml"),
        format!("[key_value_store.cache]\n{cache_backend}\n"),
    )
    .unwrap();
    app
}

fn sqlite_app() -> TestApp {
    app("type = \"sqlite\"\npath = \"cache.sqlite\"")
}

fn redis_app(redis: &RedisServer) -> TestApp {
    app(&format!("type = \"redis\"\nurl = \"{}\"", redis.url()))
}

fn start(app: &TestApp) -> Server {
    let config = app.path().join("runtime.toml");
    let cache = app.path().join(".cache");
    Server::start_with(
        app,
        &[
            "--runtime-config",
            config.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    )
}

async fn wkv(server: &Server, query: &str) -> (u16, String) {
    let reply = server.get(&format!("/wkv?label=cache&{query}")).await;
    (reply.status, reply.body)
}

async fn expect(server: &Server, query: &str, status: u16, body: &str) {
    assert_eq!(
        wkv(server, query).await,
        (status, body.to_string()),
        "{query}"
    );
}

/// Every operation of every interface, asserted the same way whatever the backend.
async fn every_operation(server: &Server) {
    expect(server, "op=get&key=a", 200, "none").await;
    expect(server, "op=exists&key=a", 200, "false").await;
    expect(server, "op=set&key=a&value=1", 200, "ok").await;
    expect(server, "op=set&key=a&value=2", 200, "ok").await;
    expect(server, "op=get&key=a", 200, "2").await;
    expect(server, "op=exists&key=a", 200, "true").await;
    expect(server, "op=delete&key=a", 200, "ok").await;
    expect(server, "op=delete&key=a", 200, "ok").await;
    expect(server, "op=exists&key=a", 200, "false").await;

    // Atomics: increment creates, adds, subtracts, and refuses what is not an integer.
    expect(server, "op=increment&key=n&delta=5", 200, "5").await;
    expect(server, "op=increment&key=n&delta=-8", 200, "-3").await;
    expect(server, "op=get&key=n", 200, "-3").await;
    expect(server, "op=set&key=word&value=abc", 200, "ok").await;
    expect(
        server,
        "op=increment&key=word&delta=1",
        500,
        "error: Error::Other(\"the value of `word` is not a decimal integer\")",
    )
    .await;
    expect(
        server,
        "op=set&key=big&value=9223372036854775807",
        200,
        "ok",
    )
    .await;
    expect(
        server,
        "op=increment&key=big&delta=1",
        500,
        "error: Error::Other(\"incrementing `big` by 1 would overflow a signed 64-bit integer\")",
    )
    .await;
    expect(server, "op=get&key=big", 200, "9223372036854775807").await;

    // Compare-and-swap: a change behind the handle's back fails the swap with a fresh handle.
    expect(
        server,
        "op=cas-race&key=c&value=mine",
        200,
        "before: none\nretry saw: intruder\nafter: mine",
    )
    .await;
    expect(
        server,
        "op=cas-race&key=c&value=again",
        200,
        "before: mine\nretry saw: intruder\nafter: again",
    )
    .await;

    // Batches: one entry per requested key, in the order asked.
    expect(server, "op=set-many&pairs=x:1,y:2,z:3", 200, "ok").await;
    expect(
        server,
        "op=get-many&keys=z,missing,x",
        200,
        "z=3,missing=none,x=1",
    )
    .await;
    expect(server, "op=delete-many&keys=x,z,missing", 200, "ok").await;
    expect(server, "op=get-many&keys=x,y,z", 200, "x=none,y=2,z=none").await;
    expect(server, "op=get-many&keys=", 200, "").await;

    expect(server, "op=list", 200, "keys: big,c,n,word,y\ncursor: none").await;

    // Pages of list-keys: 2,500 more keys come in three ordered pages with no repeats.
    expect(server, "op=fill&n=2500&prefix=k", 200, "ok").await;
    expect(
        server,
        "op=list-all",
        200,
        "pages: 3\nkeys: 2505\nordered: true",
    )
    .await;
    let (status, page) = wkv(server, "op=list").await;
    assert_eq!(status, 200);
    let cursor = page.rsplit("cursor: ").next().unwrap().to_string();
    assert_eq!(cursor, "k00997", "the cursor is the last key of the page");
    let (_, next) = wkv(server, &format!("op=list&cursor={cursor}")).await;
    assert!(next.starts_with("keys: k00998,k00999,"), "{next}");
}

async fn grants_apply(server: &Server) {
    let reply = server.get("/wkv?label=nope&op=get&key=a").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, "error: Error::NoSuchStore")
    );
    let reply = server.get("/stranger/wkv?label=cache&op=get&key=a").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (403, "error: Error::AccessDenied")
    );
}

/// `requests` parallel requests to `path` spread over `servers`; every one must succeed.
async fn in_parallel(servers: &[SocketAddr], path: &str, requests: usize) {
    let tasks: Vec<_> = (0..requests)
        .map(|i| {
            let addr = servers[i % servers.len()];
            let path = path.to_string();
            tokio::spawn(async move {
                common::send(addr, http::Method::GET, &path, Default::default()).await
            })
        })
        .collect();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

/// Parallel increments, by `increment` and by compare-and-swap retries, lose nothing.
async fn concurrent_increments_are_exact(servers: &[&Server]) {
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    in_parallel(
        &addrs,
        "/wkv?label=cache&op=increment&key=hits&delta=1",
        200,
    )
    .await;
    in_parallel(&addrs, "/wkv?label=cache&op=cas-increment&key=swaps", 100).await;
    expect(servers[0], "op=get&key=hits", 200, "200").await;
    expect(servers[0], "op=get&key=swaps", 200, "100").await;
}

#[tokio::test]
async fn every_operation_on_sqlite() {
    let app = sqlite_app();
    let server = start(&app);
    every_operation(&server).await;
    grants_apply(&server).await;
    assert!(app.path().join("cache.sqlite").is_file());
}

#[tokio::test]
async fn every_operation_on_redis() {
    let redis = RedisServer::start();
    let app = redis_app(&redis);
    let server = start(&app);
    every_operation(&server).await;
    grants_apply(&server).await;
}

#[tokio::test]
async fn concurrent_increments_on_sqlite() {
    let app = sqlite_app();
    let server = start(&app);
    concurrent_increments_are_exact(&[&server]).await;
}

#[tokio::test]
async fn concurrent_increments_on_redis_from_two_servers() {
    let redis = RedisServer::start();
    let app = redis_app(&redis);
    let first = start(&app);
    let second = start(&app);
    concurrent_increments_are_exact(&[&first, &second]).await;
}

#[tokio::test]
async fn the_spin_and_the_standard_interface_share_a_store() {
    let app = sqlite_app();
    let server = start(&app);
    expect(&server, "op=increment&key=shared&delta=41", 200, "41").await;
    let reply = server.get("/kv?label=cache&op=get&key=shared").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "41"));
}
