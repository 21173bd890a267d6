//! Native baseline for the key-value benchmark: per request, atomically add one to `visits`
//! (get + increment + set in one step), on SQLite (WAL, synchronous=NORMAL, as Kite) or
//! Redis, with Kite's threading (one current-thread runtime per CPU sharing one listener).
//!
//! Usage: native-kv ADDR sqlite PATH | native-kv ADDR redis URL

use bytes::Bytes;
use http_body_util::Full;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

enum Store {
    Sqlite(Mutex<rusqlite::Connection>),
    Redis(Mutex<redis::Connection>),
}

impl Store {
    /// Adds one to `visits` atomically, as Kite's `wasi:keyvalue` increment does on each
    /// backend: an immediate transaction reading and writing the row on SQLite, INCRBY on Redis.
    fn count_visit(&self) -> i64 {
        match self {
            Store::Sqlite(connection) => {
                let c = connection.lock().expect("lock");
                let transaction =
                    rusqlite::Transaction::new_unchecked(&c, rusqlite::TransactionBehavior::Immediate)
                        .expect("begin");
                let previous: Option<Vec<u8>> = transaction
                    .prepare_cached("SELECT value FROM kv WHERE key = 'visits'")
                    .expect("prepare")
                    .query_row([], |row| row.get(0))
                    .ok();
                let visits = parse(previous) + 1;
                transaction
                    .prepare_cached(
                        "INSERT INTO kv (key, value) VALUES ('visits', ?1)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    )
                    .expect("prepare")
                    .execute([visits.to_string().into_bytes()])
                    .expect("set");
                transaction.commit().expect("commit");
                visits
            }
            Store::Redis(connection) => {
                let mut c = connection.lock().expect("lock");
                redis::cmd("INCRBY").arg("bench:visits").arg(1).query(&mut *c).expect("incrby")
            }
        }
    }
}

fn parse(bytes: Option<Vec<u8>>) -> i64 {
    bytes
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, kind, target) = (&args[1], &args[2], &args[3]);
    let store = Arc::new(match kind.as_str() {
        "sqlite" => {
            let c = rusqlite::Connection::open(target).expect("open sqlite");
            c.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
            )
            .expect("init sqlite");
            Store::Sqlite(Mutex::new(c))
        }
        _ => Store::Redis(Mutex::new(
            redis::Client::open(target.as_str()).expect("redis url").get_connection().expect("connect redis"),
        )),
    });
    let listener = std::net::TcpListener::bind(addr).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = listener.try_clone().expect("clone listener");
            let store = store.clone();
            std::thread::spawn(move || serve(listener, store))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

fn serve(listener: std::net::TcpListener, store: Arc<Store>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let store = store.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let visits = store.count_visit();
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(format!(
                            "visit number {visits}\n"
                        )))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
