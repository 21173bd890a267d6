//! A Spin 4 HTTP component (spin-sdk 7): key-value, SQLite, Redis, MQTT, MySQL, PostgreSQL
//! and variables through `spin:*@3` and `spin:postgres@4.2.0`.

use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

#[http_service]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
            .unwrap_or_default()
    };
    let body = match path.as_str() {
        "/hello" => "Hello from Spin 4\n".to_string(),
        "/variable" => match spin_sdk::variables::get(param("name")).await {
            Ok(value) => format!("{}={value}\n", param("name")),
            Err(e) => format!("error: {e:?}\n"),
        },
        "/kv" => key_value(&param("store"), &param("key"), &param("value")).await,
        "/sqlite" => sqlite(&param("note")).await,
        "/redis" => redis(&param("address")).await,
        "/redis-denied" => redis_denied(&param("address"), param("n").parse().unwrap_or(0)).await,
        "/mqtt" => mqtt(&param("address"), &param("topic"), &param("value")).await,
        "/mysql" => mysql(&param("address")).await,
        "/pg" => pg(&param("address")).await,
        "/pg-hoard" => pg_hoard(&param("address"), param("n").parse().unwrap_or(0)).await,
        "/sqlite-hoard" => sqlite_hoard(param("n").parse().unwrap_or(0)).await,
        "/pg-cancel" => pg_cancel(&param("address"), param("n").parse().unwrap_or(0)).await,
        "/pg-tls" => {
            let ca_root = request.into_body().bytes().await.unwrap_or_default();
            pg_tls(&param("address"), String::from_utf8_lossy(&ca_root).into_owned()).await
        }
        _ => "not found\n".to_string(),
    };
    Ok(body)
}

/// Sets `key` to `value` in `store` (or `default`), then reports what the store holds.
async fn key_value(store: &str, key: &str, value: &str) -> String {
    let opened = if store.is_empty() {
        Store::open_default().await
    } else {
        Store::open(store).await
    };
    let store = match opened {
        Ok(store) => store,
        Err(e) => return format!("open: {e:?}\n"),
    };
    if let Err(e) = store.set(key, value).await {
        return format!("set: {e:?}\n");
    }
    let got = store.get(key).await.map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()));
    let exists = store.exists(key).await;
    let mut keys = store.get_keys().await.collect().await.unwrap_or_default();
    keys.sort();
    let _ = store.delete("gone").await;
    format!("get={got:?} exists={exists:?} keys={}\n", keys.join(","))
}

/// Inserts `note` into the default database, then lists every note with what the
/// connection reports about the insert.
async fn sqlite(note: &str) -> String {
    use spin_sdk::sqlite::{Connection, Value};
    let connection = match Connection::open_default().await {
        Ok(connection) => connection,
        Err(e) => return format!("open: {e:?}\n"),
    };
    let create = "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)";
    if let Err(e) = connection.execute(create, []).await {
        return format!("create: {e:?}\n");
    }
    if let Err(e) = connection
        .execute("INSERT INTO notes (body) VALUES (?)", [Value::Text(note.to_string())])
        .await
    {
        return format!("insert: {e:?}\n");
    }
    let (rowid, changes) = (connection.last_insert_rowid().await, connection.changes().await);
    let rows = match connection.execute("SELECT id, body FROM notes ORDER BY id", []).await {
        Ok(result) => result.collect().await,
        Err(e) => return format!("select: {e:?}\n"),
    };
    let notes: Vec<String> = match rows {
        Ok(rows) => rows
            .iter()
            .map(|row| format!("{}:{}", row.get::<i64>(0).unwrap_or(-1), row.get::<&str>(1).unwrap_or("?")))
            .collect(),
        Err(e) => return format!("rows: {e:?}\n"),
    };
    format!("rowid={rowid} changes={changes} notes={}\n", notes.join(","))
}

/// Counts visits in the Redis server at `address`, and tries a command that acts on the
/// server itself (refused).
async fn redis(address: &str) -> String {
    use spin_sdk::redis::{Connection, RedisParameter};
    let connection = match Connection::open(address).await {
        Ok(connection) => connection,
        Err(e) => return format!("open: {e:?}\n"),
    };
    let visits = connection.incr("spin4-visits").await;
    let _ = connection.set("spin4-greeting", b"hello").await;
    let greeting = connection
        .get("spin4-greeting")
        .await
        .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()));
    let refused = connection
        .execute("CONFIG", vec![RedisParameter::Binary(b"GET".to_vec())])
        .await
        .is_err();
    format!("visits={visits:?} greeting={greeting:?} config_refused={refused}\n")
}

/// Publishes `value` to `topic` at the broker at `address`, at least once.
async fn mqtt(address: &str, topic: &str, value: &str) -> String {
    use spin_sdk::mqtt::{Connection, Qos};
    let connection = match Connection::open(address, "", "", 30).await {
        Ok(connection) => connection,
        Err(e) => return format!("open: {e:?}\n"),
    };
    match connection
        .publish(topic, value.as_bytes().to_vec(), Qos::AtLeastOnce)
        .await
    {
        Ok(()) => "published\n".to_string(),
        Err(e) => format!("publish: {e:?}\n"),
    }
}

/// Keeps pets in the MySQL database at `address`: creates the table, inserts two, lists
/// every pet through the row stream, and reports what a query of a missing table says.
async fn mysql(address: &str) -> String {
    use spin_sdk::mysql::{Connection, ParameterValue};
    let db = match Connection::open(address).await {
        Ok(db) => db,
        Err(e) => return format!("open: {e:?}\n"),
    };
    let create = "CREATE TABLE IF NOT EXISTS pets (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40))";
    if let Err(e) = db.execute(create, Vec::<ParameterValue>::new()).await {
        return format!("create: {e:?}\n");
    }
    let names = vec![ParameterValue::Str("rex".into()), ParameterValue::Str("tom".into())];
    if let Err(e) = db.execute("INSERT INTO pets (name) VALUES (?), (?)", names).await {
        return format!("insert: {e:?}\n");
    }
    let rows = match db.query("SELECT id, name FROM pets ORDER BY id", Vec::<ParameterValue>::new()).await {
        Ok(result) => result.collect().await,
        Err(e) => return format!("select: {e:?}\n"),
    };
    let pets: Vec<String> = match rows {
        Ok(rows) => rows
            .iter()
            .map(|row| format!("{}:{}", row.get::<i32>("id").unwrap_or(-1), row.get::<String>("name").unwrap_or_default()))
            .collect(),
        Err(e) => return format!("rows: {e:?}\n"),
    };
    let missing = db.query("SELECT * FROM missing", Vec::<ParameterValue>::new()).await.err();
    format!("pets={} missing={}\n", pets.join(","), missing.map(|e| format!("{e:?}")).unwrap_or_default())
}

/// The same with PostgreSQL at `address`, through `spin:postgres@4.2.0`'s async functions.
async fn pg(address: &str) -> String {
    use spin_sdk::pg::{Connection, ParameterValue};
    let db = match Connection::open(address).await {
        Ok(db) => db,
        Err(e) => return format!("open: {e:?}\n"),
    };
    let create = "CREATE TABLE IF NOT EXISTS pets (id SERIAL PRIMARY KEY, name TEXT, born DATE)";
    if let Err(e) = db.execute(create, Vec::<ParameterValue>::new()).await {
        return format!("create: {e:?}\n");
    }
    let values = vec![
        ParameterValue::Str("rex".into()),
        ParameterValue::Date((2020, 1, 2)),
        ParameterValue::Str("tom".into()),
    ];
    let inserted = match db
        .execute("INSERT INTO pets (name, born) VALUES ($1, $2), ($3, NULL)", values)
        .await
    {
        Ok(n) => n,
        Err(e) => return format!("insert: {e:?}\n"),
    };
    let rows = match db
        .query("SELECT id, name, born FROM pets ORDER BY id", Vec::<ParameterValue>::new())
        .await
    {
        Ok(result) => result.collect().await,
        Err(e) => return format!("select: {e:?}\n"),
    };
    let pets: Vec<String> = match rows {
        Ok(rows) => rows
            .iter()
            .map(|row| {
                let born = row.get::<Option<chrono::NaiveDate>>("born").flatten();
                format!(
                    "{}:{}:{}",
                    row.get::<i32>("id").unwrap_or(-1),
                    row.get::<String>("name").unwrap_or_default(),
                    born.map(|d| d.to_string()).unwrap_or("-".into())
                )
            })
            .collect(),
        Err(e) => return format!("rows: {e:?}\n"),
    };
    let missing = match db.query("SELECT * FROM missing", Vec::<ParameterValue>::new()).await {
        Err(spin_sdk::pg::Error::PgError(spin_sdk::pg::PgError::QueryFailed(
            spin_sdk::pg::QueryError::DbError(db),
        ))) => db.code,
        Err(e) => format!("{e:?}"),
        Ok(_) => "found".into(),
    };
    format!("inserted={inserted} pets={} missing={missing}\n", pets.join(","))
}

/// Connects to the PostgreSQL server at `address` trusting `ca_root` (if any) for this
/// connection, and says whether the connection is encrypted.
async fn pg_tls(address: &str, ca_root: String) -> String {
    use spin_sdk::pg::{Certificate, Connection, OpenOptions, ParameterValue};
    let opened = if ca_root.is_empty() {
        Connection::open(address).await
    } else {
        let options = OpenOptions {
            ca_root: Some(Certificate::Text(ca_root)),
        };
        Connection::open_with_options(address, options).await
    };
    let db = match opened {
        Ok(db) => db,
        Err(e) => return format!("open: {e:?}\n"),
    };
    let ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    match db.query(ssl, Vec::<ParameterValue>::new()).await {
        Ok(result) => match result.collect().await {
            Ok(rows) => format!("tls={:?}\n", rows.first().and_then(|row| row.get::<bool>("ssl"))),
            Err(e) => format!("rows: {e:?}\n"),
        },
        Err(e) => format!("query: {e:?}\n"),
    }
}

/// Runs `n` queries of a 1 MiB row each and keeps every result unread: how many the host
/// ran, and what it said when it refused one.
async fn pg_hoard(address: &str, n: usize) -> String {
    use spin_sdk::pg::{Connection, ParameterValue};
    let db = match Connection::open(address).await {
        Ok(db) => db,
        Err(e) => return format!("open: {e:?}\n"),
    };
    let mut kept = Vec::new();
    for _ in 0..n {
        match db.query("SELECT repeat('x', 1048576) AS big", Vec::<ParameterValue>::new()).await {
            Ok(result) => kept.push(result),
            Err(e) => return format!("kept={} refused={e:?}\n", kept.len()),
        }
    }
    format!("kept={}\n", kept.len())
}

/// The same with SQLite.
async fn sqlite_hoard(n: usize) -> String {
    use spin_sdk::sqlite::Connection;
    let db = match Connection::open_default().await {
        Ok(db) => db,
        Err(e) => return format!("open: {e:?}\n"),
    };
    let mut kept = Vec::new();
    for _ in 0..n {
        match db.execute("SELECT randomblob(1048576) AS big", []).await {
            Ok(result) => kept.push(result),
            Err(e) => return format!("kept={} refused={e:?}\n", kept.len()),
        }
    }
    format!("kept={}\n", kept.len())
}

/// Starts `n` slow statements and cancels each at once (dropping its call after one poll),
/// then runs one more query on another connection: what the host says to it.
async fn pg_cancel(address: &str, n: usize) -> String {
    use futures::FutureExt;
    use spin_sdk::pg::{Connection, ParameterValue};
    let db = match Connection::open(address).await {
        Ok(db) => db,
        Err(e) => return format!("open: {e:?}\n"),
    };
    for _ in 0..n {
        let call = db.execute("SELECT pg_sleep(60)", Vec::<ParameterValue>::new());
        let _ = call.now_or_never();
    }
    // On a connection of its own: the cancelled statements still hold the first.
    let fresh = match Connection::open(address).await {
        Ok(db) => db,
        Err(e) => return format!("open again: {e:?}\n"),
    };
    match fresh.query("SELECT 1 AS one", Vec::<ParameterValue>::new()).await {
        Ok(_) => "after: ran\n".to_string(),
        Err(e) => format!("after: {e:?}\n"),
    }
}

/// Tries to open a Redis connection to `address` `n` times: how many were refused.
async fn redis_denied(address: &str, n: usize) -> String {
    let mut refused = 0;
    for _ in 0..n {
        if spin_sdk::redis::Connection::open(address).await.is_err() {
            refused += 1;
        }
    }
    format!("refused={refused}\n")
}
