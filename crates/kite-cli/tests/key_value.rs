//! The Spin key-value interface on the embedded SQLite store: every operation, access
//! control by grant, per-app isolation, and durability of acknowledged writes across kill -9.

mod common;
use common::{Server, TestApp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn app() -> TestApp {
    TestApp::probe(
        "[[route]]\npath = \"/stranger/...\"\ncomponent = \"stranger\"\n[[route]]\npath = \"/...\"\ncomponent = \"writer\"\n\
         [component.writer]\nsource = \"PROBE\"\nkey_value_stores = [\"default\"]\n\
         [component.stranger]\nsource = \"PROBE\"\n",
    )
}

async fn kv(server: &Server, query: &str) -> (u16, String) {
    let reply = server.get(&format!("/kv?{query}")).await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn every_operation_on_the_default_store() {
    let app = app();
    let server = Server::start(&app);
    assert_eq!(
        kv(&server, "label=default&op=get&key=a").await,
        (200, "none".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=exists&key=a").await,
        (200, "false".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=set&key=a&value=1").await,
        (200, "ok".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=set&key=b&value=2").await,
        (200, "ok".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=set&key=a&value=3").await,
        (200, "ok".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=get&key=a").await,
        (200, "3".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=exists&key=a").await,
        (200, "true".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=keys").await,
        (200, "a,b".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=delete&key=a").await,
        (200, "ok".into())
    );
    assert_eq!(
        kv(&server, "label=default&op=keys").await,
        (200, "b".into())
    );
    assert!(app.path().join(".kite/key_value/default.sqlite").is_file());
}

#[tokio::test]
async fn stores_open_only_where_granted() {
    let app = app();
    let server = Server::start(&app);
    let (status, body) = kv(&server, "label=nope&op=keys").await;
    assert_eq!((status, body.as_str()), (404, "error: Error::NoSuchStore"));
    let reply = server.get("/stranger/kv?label=default&op=keys").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (403, "error: Error::AccessDenied")
    );
}

#[tokio::test]
async fn each_app_has_its_own_data() {
    let (first, second) = (app(), app());
    let a = Server::start(&first);
    let b = Server::start(&second);
    assert_eq!(
        kv(&a, "label=default&op=set&key=k&value=first").await.0,
        200
    );
    assert_eq!(
        kv(&b, "label=default&op=get&key=k").await,
        (200, "none".into())
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let app = app();
    let server = Server::start(&app);
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let addr = server.addr;
    let counter = acknowledged.clone();
    let writer = tokio::spawn(async move {
        for i in 0.. {
            let path = format!("/kv?label=default&op=set&key=k{i:05}&value=v{i}");
            let reply = tokio::time::timeout(
                Duration::from_secs(5),
                common::try_send(addr, http::Method::GET, &path, bytes::Bytes::new()),
            )
            .await;
            match reply {
                Ok(Some(200)) => counter.store(i + 1, Ordering::SeqCst),
                _ => return,
            }
        }
    });
    while acknowledged.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.signal("KILL");
    let _ = writer.await;
    let acked = acknowledged.load(Ordering::SeqCst);
    drop(server);

    let server = Server::start(&app);
    let (status, keys) = kv(&server, "label=default&op=keys").await;
    assert_eq!(status, 200);
    let stored: std::collections::HashSet<&str> = keys.split(',').collect();
    for i in 0..acked {
        assert!(
            stored.contains(format!("k{i:05}").as_str()),
            "acknowledged write k{i:05} of {acked} was lost"
        );
    }
}

#[tokio::test]
async fn seeded_keys_are_there_at_start() {
    let app = app();
    for _ in 0..2 {
        let server = Server::start_with(
            &app,
            &["--no-cache", "--key-value", "default:greeting=hello"],
        );
        assert_eq!(
            kv(&server, "label=default&op=get&key=greeting").await,
            (200, "hello".into())
        );
        assert_eq!(
            kv(&server, "label=default&op=keys").await,
            (200, "greeting".into())
        );
    }
}
