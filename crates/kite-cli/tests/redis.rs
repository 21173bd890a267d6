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
