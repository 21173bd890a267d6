//! Native baseline for the key-value benchmark: per request, atomically add one to `visits`
//! (get + increment + set in one step), on SQLite (WAL, synchronous=NORMAL, as Kite) or
//! Redis, with Kite's threading (one current-thread runtime per CPU sharing one listener) and
//! Kite's Redis connections (one pipelined async connection per worker thread).
//!
//! Usage: native-kv ADDR sqlite PATH | native-kv ADDR redis URL

use bytes::Bytes;
use http_body_util::Full;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

/// What one worker thread uses: the shared SQLite connection, or its own Redis connection.
#[derive(Clone)]
enum Store {
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    Redis(redis::aio::MultiplexedConnection),
}

impl Store {
    /// Adds one to `visits` atomically, as Kite's `wasi:keyvalue` increment does on each
    /// backend: an immediate transaction reading and writing the row on SQLite, INCRBY on Redis.
    async fn count_visit(&self) -> i64 {
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
                let mut c = connection.clone();
                redis::cmd("INCRBY")
                    .arg("bench:visits")
                    .arg(1)
                    .query_async(&mut c)
                    .await
                    .expect("incrby")
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
    let sqlite = (kind == "sqlite").then(|| {
        let c = rusqlite::Connection::open(target).expect("open sqlite");
        c.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
        )
        .expect("init sqlite");
        Arc::new(Mutex::new(c))
    });
    let listener = std::net::TcpListener::bind(addr).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let listener = listener.try_clone().expect("clone listener");
            let sqlite = sqlite.clone();
            let redis_url = target.clone();
            std::thread::spawn(move || serve(listener, sqlite, redis_url))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

fn serve(
    listener: std::net::TcpListener,
    sqlite: Option<Arc<Mutex<rusqlite::Connection>>>,
    redis_url: String,
) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let store = match sqlite {
            Some(connection) => Store::Sqlite(connection),
            None => Store::Redis(
                redis::Client::open(redis_url.as_str())
                    .expect("redis url")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect redis"),
            ),
        };
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let store = store.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let store = store.clone();
                    async move {
                        let visits = store.count_visit().await;
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
