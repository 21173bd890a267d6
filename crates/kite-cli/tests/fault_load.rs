//! Faults under load: a steady stream of hello requests runs while other requests trap,
//! loop, bomb memory, overflow the stack, stall in SQLite, flood logs and drip bodies.

mod common;
use bytes::Bytes;
use common::{guest, Server, TestApp};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn app() -> TestApp {
    let manifest = format!(
        "manifest_version = 1\n[app]\nname = \"faults\"\n\
         [[route]]\npath = \"/hello\"\ncomponent = \"hello\"\n\
         [[route]]\npath = \"/evil/...\"\ncomponent = \"evil\"\n\
         [[route]]\npath = \"/db/...\"\ncomponent = \"db\"\n\
         [component.hello]\nsource = \"{probe}\"\n\
         [component.evil]\nsource = \"{attacker}\"\nlimits = {{ memory = \"32MiB\", timeout = \"3s\" }}\n\
         [component.db]\nsource = \"{probe}\"\nsqlite_databases = [\"default\"]\nlimits = {{ timeout = \"3s\" }}\n",
        probe = guest("probe").display(),
        attacker = guest("attacker").display(),
    );
    TestApp::new(&manifest)
}

/// Sends `body` for `path`; the status, or 0 if the connection failed or the response
/// broke off.
async fn request(addr: SocketAddr, method: http::Method, path: &str, body: &str) -> u16 {
    common::try_send(addr, method, path, Bytes::from(body.to_string()))
        .await
        .unwrap_or(0)
}

/// Opens a POST whose body trickles in one byte at a time, slower than the body timeout.
async fn drip(addr: SocketAddr) {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let head = b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    if stream.write_all(head).await.is_err() {
        return;
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if stream.write_all(b"x").await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hello_requests_never_fail_while_other_requests_misbehave() {
    let app = app();
    let server = Server::start_with(&app, &["--body-timeout", "2s"]);
    let addr = server.addr;
    assert_eq!(request(addr, http::Method::GET, "/hello", "").await, 200);
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

    let done = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut steady = Vec::new();
    for _ in 0..2 {
        let (done, served, failed) = (done.clone(), served.clone(), failed.clone());
        steady.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                let started = std::time::Instant::now();
                match request(addr, http::Method::GET, "/hello", "").await {
                    200 => served.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                slowest = slowest.max(started.elapsed());
            }
            slowest
        }));
    }

    let mut faults = Vec::new();
    let mut fault = |method: http::Method, path: &'static str, body: &'static str, times| {
        for _ in 0..times {
            let method = method.clone();
            faults.push(tokio::spawn(async move {
                request(addr, method, path, body).await
            }));
        }
    };
    fault(http::Method::GET, "/evil/fill?mb=64", "", 6);
    fault(http::Method::GET, "/evil/recurse", "", 6);
    fault(http::Method::GET, "/evil/fields-bomb?mb=4096", "", 3);
    fault(http::Method::GET, "/evil/body-bomb?mb=4096", "", 3);
    fault(http::Method::GET, "/db/loop", "", 3);
    fault(http::Method::GET, "/db/trap", "", 10);
    fault(http::Method::POST, "/db/sql?db=default", endless, 2);
    let drips: Vec<_> = (0..5).map(|_| tokio::spawn(drip(addr))).collect();
    let floods: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(async move {
                request(addr, http::Method::GET, "/evil/log-flood?lines=20000", "").await
            })
        })
        .collect();

    let mut statuses = Vec::new();
    for fault in faults {
        statuses.push(fault.await.unwrap());
    }
    for drip in drips {
        drip.await.unwrap();
    }
    for flood in floods {
        flood.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let mut slowest = Duration::ZERO;
    for task in steady {
        slowest = slowest.max(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|&s| s >= 400 || s == 0),
        "every fault fails its own request: {statuses:?}"
    );
    let (served, failed) = (served.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("hello: {served} served, {failed} failed, slowest {slowest:?}; faults: {statuses:?}");
    assert_eq!(failed, 0, "{served} hello requests served");
    assert!(served >= 10, "only {served} hello requests were served");
    assert_eq!(request(addr, http::Method::GET, "/hello", "").await, 200);
}
