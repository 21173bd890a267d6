//! Key-value stores on a real Redis server, chosen by the runtime configuration: the same
//! operations as on SQLite, and isolation between apps and stores sharing one server.

mod common;
use common::{RedisServer, Server, TestApp};

fn app(name: &str, redis: &RedisServer) -> TestApp {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nkey_value_stores = [\"default\", \"cache\", \"other\"]\n",
    );
    let manifest = std::fs::read_to_string(app.path().join("kite.toml")).unwrap();
    std::fs::write(
        app.path().join("kite.toml"),
        manifest.replace("name = \"test\"", &format!("name = \"{name}\"")),
    )
    .unwrap();
    std::fs::write(
        app.path().join("runtime.toml"),
        format!(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"{0}\"\n[key_value_store.other]\ntype = \"redis\"\nurl = \"{0}\"\n",
            redis.url()
        ),
    )
    .unwrap();
    app
}

fn start(app: &TestApp) -> Server {
    let config = app.path().join("runtime.toml");
    Server::start_with(
        app,
        &["--no-cache", "--runtime-config", config.to_str().unwrap()],
    )
}

async fn kv(server: &Server, query: &str) -> (u16, String) {
    let reply = server.get(&format!("/kv?{query}")).await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn every_operation_on_redis() {
    let redis = RedisServer::start();
    let app = app("first", &redis);
    let server = start(&app);
    assert_eq!(
        kv(&server, "label=cache&op=get&key=a").await,
        (200, "none".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=exists&key=a").await,
        (200, "false".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=set&key=a&value=1").await,
        (200, "ok".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=set&key=b&value=2").await,
        (200, "ok".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=set&key=a&value=3").await,
        (200, "ok".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=get&key=a").await,
        (200, "3".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=exists&key=a").await,
        (200, "true".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=keys").await,
        (200, "a,b".into())
    );
    assert_eq!(
        kv(&server, "label=cache&op=delete&key=a").await,
        (200, "ok".into())
    );
    assert_eq!(kv(&server, "label=cache&op=keys").await, (200, "b".into()));
    assert_eq!(
        kv(&server, "label=default&op=keys").await,
        (200, "".into()),
        "default stays on SQLite"
    );
}

#[tokio::test]
async fn apps_and_stores_sharing_one_redis_are_isolated() {
    let redis = RedisServer::start();
    let (first, second) = (app("first", &redis), app("second", &redis));
    let a = start(&first);
    let b = start(&second);
    assert_eq!(
        kv(&a, "label=cache&op=set&key=k&value=from-first").await.0,
        200
    );
    assert_eq!(
        kv(&b, "label=cache&op=get&key=k").await,
        (200, "none".into()),
        "another app"
    );
    assert_eq!(kv(&b, "label=cache&op=keys").await, (200, "".into()));
    assert_eq!(
        kv(&a, "label=other&op=get&key=k").await,
        (200, "none".into()),
        "another store"
    );
    assert_eq!(
        kv(&a, "label=cache&op=get&key=k").await,
        (200, "from-first".into())
    );
}

#[tokio::test]
async fn a_prefix_in_the_runtime_configuration_separates_or_shares_stores() {
    let redis = RedisServer::start();
    // Two apps with the same name: the default prefix would mix their keys, so each
    // deployment gets its own prefix; a third names the first one's prefix to share it.
    let with_prefix = |prefix: &str| {
        let app = app("same", &redis);
        std::fs::write(
            app.path().join("runtime.toml"),
            format!(
                "[key_value_store.cache]\ntype = \"redis\"\nurl = \"{}\"\nprefix = \"{prefix}\"\n\
                 [key_value_store.other]\ntype = \"redis\"\nurl = \"{}\"\n",
                redis.url(),
                redis.url()
            ),
        )
        .unwrap();
        app
    };
    let (staging, production, reader) = (
        with_prefix("staging:"),
        with_prefix("production:"),
        with_prefix("staging:"),
    );
    let (staging, production, reader) = (start(&staging), start(&production), start(&reader));
    assert_eq!(
        kv(&staging, "label=cache&op=set&key=k&value=staged")
            .await
            .0,
        200
    );
    assert_eq!(
        kv(&production, "label=cache&op=get&key=k").await,
        (200, "none".into())
    );
    assert_eq!(
        kv(&reader, "label=cache&op=get&key=k").await,
        (200, "staged".into())
    );
}

#[test]
fn an_unreachable_redis_stops_kite_up() {
    let redis = RedisServer::start();
    let app = app("first", &redis);
    drop(redis);
    let config = app.path().join("runtime.toml");
    let stderr = common::up_fails(&app, &["--runtime-config", config.to_str().unwrap()]);
    assert!(
        stderr.contains("key-value store `cache` (Redis)")
            && stderr.contains("connecting to redis://"),
        "{stderr}"
    );
}

/// A runtime configuration for `app` whose `cache` store is at `url` with `timeout`
/// (and `other` on `redis`).
fn with_timeout(app: &TestApp, url: &str, timeout: &str, redis: &RedisServer) {
    std::fs::write(
        app.path().join("runtime.toml"),
        format!(
            "[key_value_store.cache]\ntype = \"redis\"\nurl = \"{url}\"\ntimeout = \"{timeout}\"\n\
             [key_value_store.other]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis.url()
        ),
    )
    .unwrap();
}

#[test]
fn a_redis_that_never_answers_stops_kite_up_within_the_timeout() {
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept() {
            connections.push(connection);
            if connections.len() == 4 {
                break;
            }
        }
    });
    let redis = RedisServer::start();
    let app = app("first", &redis);
    with_timeout(&app, &url, "1s", &redis);
    let config = app.path().join("runtime.toml");
    let started = std::time::Instant::now();
    let stderr = common::up_fails(&app, &["--runtime-config", config.to_str().unwrap()]);
    assert!(
        stderr.contains("key-value store `cache` (Redis)")
            && stderr.contains("did not answer within 1s"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    drop(held);
}

/// Makes `redis` stop answering every client for `ms` milliseconds (`CLIENT PAUSE`).
fn pause_redis(redis: &RedisServer, ms: u32) {
    let mut admin = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    let ms = ms.to_string();
    let command = format!(
        "*3\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n${}\r\n{ms}\r\n",
        ms.len()
    );
    std::io::Write::write_all(&mut admin, command.as_bytes()).unwrap();
    let mut reply = [0u8; 5];
    std::io::Read::read_exact(&mut admin, &mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
}

#[tokio::test]
async fn a_stalled_redis_fails_the_request_and_the_store_recovers() {
    let redis = RedisServer::start();
    let app = app("first", &redis);
    with_timeout(&app, &redis.url(), "1s", &redis);
    let server = start(&app);
    assert_eq!(
        kv(&server, "label=cache&op=set&key=k&value=v").await,
        (200, "ok".into())
    );
    pause_redis(&redis, 3000);

    let started = std::time::Instant::now();
    let (status, body) = kv(&server, "label=cache&op=get&key=k").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("did not answer within 1s"), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));

    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        kv(&server, "label=cache&op=get&key=k").await,
        (200, "v".into()),
        "a new connection after the stall"
    );
}

#[tokio::test]
async fn a_request_waiting_for_redis_does_not_hold_up_its_worker() {
    let redis = RedisServer::start();
    let app = app("first", &redis);
    with_timeout(&app, &redis.url(), "5s", &redis);
    let config = app.path().join("runtime.toml");
    // One worker thread: every request shares it with the one waiting for Redis.
    let server = Server::start_with(
        &app,
        &[
            "--no-cache",
            "--workers",
            "1",
            "--runtime-config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(
        kv(&server, "label=cache&op=set&key=k&value=v").await,
        (200, "ok".into())
    );
    pause_redis(&redis, 2000);
    let started = std::time::Instant::now();
    let (waiting, (status, body, answered_at)) =
        tokio::join!(kv(&server, "label=cache&op=get&key=k"), async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let (status, body) = kv(&server, "label=default&op=get&key=k").await;
            (status, body, started.elapsed())
        });
    assert_eq!((status, body.as_str()), (200, "none"));
    assert!(
        answered_at < std::time::Duration::from_millis(1500),
        "a request without Redis waited {answered_at:?} behind one with it"
    );
    assert_eq!(waiting, (200, "v".into()), "answered once Redis resumed");
    assert!(started.elapsed() >= std::time::Duration::from_millis(1800));
}

#[tokio::test]
async fn seeds_land_in_redis_before_requests_are_served() {
    let redis = RedisServer::start();
    let app = app("first", &redis);
    let config = app.path().join("runtime.toml");
    let server = Server::start_with(
        &app,
        &[
            "--no-cache",
            "--runtime-config",
            config.to_str().unwrap(),
            "--key-value",
            "cache:greeting=hello",
        ],
    );
    assert_eq!(
        kv(&server, "label=cache&op=get&key=greeting").await,
        (200, "hello".into())
    );
    assert_eq!(
        kv(&server, "label=other&op=get&key=greeting").await,
        (200, "none".into()),
        "seeded into `cache` only"
    );
}
