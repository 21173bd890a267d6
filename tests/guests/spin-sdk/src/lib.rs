//! A guest written with the Spin Rust SDK (5.2, the `fermyon:spin@2.0.0` interfaces plus
//! `spin:postgres@3/4`): each route exercises one interface and reports what it saw.
//!
//! Routes take `?address=` (percent-encoded) and the like; a route answers 200 with what
//! the calls returned, or 500 with the interface's error as the SDK shows it (`{:?}`).

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use std::collections::HashMap;
use std::fmt::Debug;
use std::fmt::Write as _;

type Outcome = Result<String, String>;

#[http_component]
fn handle(request: Request) -> Response {
    let query = parse_query(request.query());
    let arg = |name: &str| query.get(name).cloned().unwrap_or_default();
    let body = String::from_utf8_lossy(request.body()).into_owned();
    // Under a wildcard route the host says which part of the path is the guest's.
    let path = request
        .header("spin-path-info")
        .and_then(|value| value.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| request.path().to_string());
    let outcome = match path.as_str() {
        "/redis" => redis(&arg("address")),
        "/pg2" => pg2(&arg("address")),
        "/pg3" => pg3(&arg("address")),
        "/pg4" => pg4(&arg("address")),
        "/mysql" => mysql(&arg("address")),
        "/mysql-query" => mysql_query(&arg("address"), &body),
        "/pg-query" => pg_query(&arg("address"), &body),
        "/mqtt" => mqtt(&arg("address"), &arg("topic"), &arg("qos"), &body),
        "/llm" => llm(),
        "/kv" => kv(&arg("store")),
        "/sqlite" => sqlite(&arg("database")),
        "/variable" => spin_sdk::variables::get(&arg("name")).map_err(shown),
        "/open" => open(&arg("kind"), &arg("address")),
        _ => return Response::new(404, "no such route"),
    };
    match outcome {
        Ok(text) => Response::new(200, text),
        Err(error) => Response::new(500, error),
    }
}

fn shown(error: impl Debug) -> String {
    format!("{error:?}")
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (decode(key), decode(value)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens a connection of `kind` (MQTT also publishes: its connection is made lazily).
fn open(kind: &str, address: &str) -> Outcome {
    match kind {
        "redis" => spin_sdk::redis::Connection::open(address)
            .map(|_| ())
            .map_err(shown),
        "pg2" => spin_sdk::pg::Connection::open(address)
            .map(|_| ())
            .map_err(shown),
        "pg3" => spin_sdk::pg3::Connection::open(address)
            .map(|_| ())
            .map_err(shown),
        "pg4" => spin_sdk::pg4::Connection::open(address)
            .map(|_| ())
            .map_err(shown),
        "mysql" => spin_sdk::mysql::Connection::open(address)
            .map(|_| ())
            .map_err(shown),
        "mqtt" => spin_sdk::mqtt::Connection::open(address, "", "", 30)
            .and_then(|c| c.publish("kite/open", b"hi", spin_sdk::mqtt::Qos::AtLeastOnce))
            .map_err(shown),
        other => return Err(format!("unknown kind {other}")),
    }
    .map(|()| "open".to_string())
}

fn redis(address: &str) -> Outcome {
    use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
    let c = Connection::open(address).map_err(shown)?;
    let mut out = String::new();
    c.set("sdk:k", b"v").map_err(shown)?;
    writeln!(out, "get {:?}", c.get("sdk:k").map_err(shown)?).unwrap();
    writeln!(out, "get missing {:?}", c.get("sdk:none").map_err(shown)?).unwrap();
    writeln!(out, "incr {:?}", c.incr("sdk:n").map_err(shown)?).unwrap();
    let values = ["a".to_string(), "b".to_string()];
    writeln!(out, "sadd {:?}", c.sadd("sdk:s", &values).map_err(shown)?).unwrap();
    let mut members = c.smembers("sdk:s").map_err(shown)?;
    members.sort();
    writeln!(out, "smembers {members:?}").unwrap();
    writeln!(
        out,
        "srem {:?}",
        c.srem("sdk:s", &values[..1]).map_err(shown)?
    )
    .unwrap();
    let keys = ["sdk:k".to_string(), "sdk:n".to_string()];
    writeln!(out, "del {:?}", c.del(&keys).map_err(shown)?).unwrap();
    let append = c
        .execute(
            "APPEND",
            &[
                RedisParameter::Binary(b"sdk:a".to_vec()),
                RedisParameter::Binary(b"xy".to_vec()),
            ],
        )
        .map_err(shown)?;
    writeln!(out, "execute APPEND {append:?}").unwrap();
    let set = c
        .execute(
            "SET",
            &[
                RedisParameter::Binary(b"sdk:i".to_vec()),
                RedisParameter::Int64(41),
            ],
        )
        .map_err(shown)?;
    writeln!(out, "execute SET {set:?}").unwrap();
    let range = c
        .execute(
            "LRANGE",
            &[
                RedisParameter::Binary(b"sdk:nothing".to_vec()),
                RedisParameter::Int64(0),
                RedisParameter::Int64(-1),
            ],
        )
        .map_err(shown)?;
    writeln!(out, "execute LRANGE {range:?}").unwrap();
    let nil: Vec<RedisResult> = c
        .execute("GET", &[RedisParameter::Binary(b"sdk:none".to_vec())])
        .map_err(shown)?;
    writeln!(out, "execute GET missing {nil:?}").unwrap();
    c.publish("sdk:channel", b"hello").map_err(shown)?;
    writeln!(out, "published").unwrap();
    Ok(out)
}

fn pg2(address: &str) -> Outcome {
    use spin_sdk::pg::{Connection, Decode, ParameterValue as P};
    let c = Connection::open(address).map_err(shown)?;
    c.execute("DROP TABLE IF EXISTS sdk_v2", &[])
        .map_err(shown)?;
    c.execute(
        "CREATE TABLE sdk_v2 (b boolean, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, t text, by bytea, d date)",
        &[],
    )
    .map_err(shown)?;
    let inserted = c
        .execute(
            "INSERT INTO sdk_v2 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '2024-01-02')",
            &[
                P::Boolean(true),
                P::Int16(-2),
                P::Int32(3),
                P::Int64(-4),
                P::Floating32(1.5),
                P::Floating64(2.25),
                P::Str("héllo".into()),
                P::Binary(vec![0, 1, 255]),
            ],
        )
        .map_err(shown)?;
    let rows = c.query("SELECT * FROM sdk_v2", &[]).map_err(shown)?;
    let row = &rows.rows[0];
    let mut out = format!("inserted {inserted}\n");
    for column in &rows.columns {
        writeln!(out, "column {} {:?}", column.name, column.data_type).unwrap();
    }
    writeln!(
        out,
        "decoded {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        bool::decode(&row[0]).map_err(shown)?,
        i16::decode(&row[1]).map_err(shown)?,
        i32::decode(&row[2]).map_err(shown)?,
        i64::decode(&row[3]).map_err(shown)?,
        f32::decode(&row[4]).map_err(shown)?,
        f64::decode(&row[5]).map_err(shown)?,
        String::decode(&row[6]).map_err(shown)?,
        Vec::<u8>::decode(&row[7]).map_err(shown)?,
    )
    .unwrap();
    writeln!(out, "date {:?}", row[8]).unwrap();
    let unsigned = c.query("SELECT $1::int4", &[P::Uint8(1)]);
    writeln!(out, "unsigned {unsigned:?}").unwrap();
    Ok(out)
}

fn pg3(address: &str) -> Outcome {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
    use spin_sdk::pg3::{Connection, Decode, ParameterValue};
    let c = Connection::open(address).map_err(shown)?;
    c.execute("DROP TABLE IF EXISTS sdk_v3", &[])
        .map_err(shown)?;
    c.execute(
        "CREATE TABLE sdk_v3 (d date, t time, ts timestamp, n text)",
        &[],
    )
    .map_err(shown)?;
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_milli_opt(13, 14, 15, 500).unwrap();
    let stamp = NaiveDateTime::new(date, time);
    let params: [ParameterValue; 4] = [
        date.into(),
        time.into(),
        stamp.into(),
        ParameterValue::DbNull,
    ];
    let inserted = c
        .execute("INSERT INTO sdk_v3 VALUES ($1, $2, $3, $4)", &params)
        .map_err(shown)?;
    let rows = c.query("SELECT * FROM sdk_v3", &[]).map_err(shown)?;
    let row = &rows.rows[0];
    Ok(format!(
        "inserted {inserted}\ndecoded {} {} {} {:?}\n",
        NaiveDate::decode(&row[0]).map_err(shown)?,
        NaiveTime::decode(&row[1]).map_err(shown)?,
        NaiveDateTime::decode(&row[2]).map_err(shown)?,
        Option::<String>::decode(&row[3]).map_err(shown)?,
    ))
}

fn pg4(address: &str) -> Outcome {
    use rust_decimal::Decimal;
    use spin_sdk::pg4::{Connection, Interval, ParameterValue};
    use std::str::FromStr;
    let c = Connection::open(address).map_err(shown)?;
    c.execute("DROP TABLE IF EXISTS sdk_v4", &[])
        .map_err(shown)?;
    c.execute(
        "CREATE TABLE sdk_v4 (u uuid, j jsonb, n numeric, r int4range, a int8[], s text[], iv interval)",
        &[],
    )
    .map_err(shown)?;
    let id = uuid::Uuid::from_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
    let json: ParameterValue = serde_json::json!({"a": [1, 2]}).try_into().map_err(shown)?;
    let params: [ParameterValue; 7] = [
        id.into(),
        json,
        Decimal::from_str("-12.5").unwrap().into(),
        (1..10).into(),
        vec![1i64, -2].into(),
        vec!["x".to_string(), "y z".to_string()].into(),
        Interval {
            micros: 1_500_000,
            days: 2,
            months: 3,
        }
        .into(),
    ];
    let inserted = c
        .execute(
            "INSERT INTO sdk_v4 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &params,
        )
        .map_err(shown)?;
    let rows = c.query("SELECT * FROM sdk_v4", &[]).map_err(shown)?;
    let row = rows.rows().next().ok_or("no row")?;
    Ok(format!(
        "inserted {inserted}\ndecoded {:?} {:?} {:?} {:?} {:?} {:?}\n",
        row.get::<uuid::Uuid>("u").map(|u| u.to_string()),
        row.get::<serde_json::Value>("j").map(|j| j.to_string()),
        row.get::<Decimal>("n").map(|d| d.to_string()),
        row.get::<Vec<Option<i64>>>("a"),
        row.get::<Vec<Option<String>>>("s"),
        row.get::<Interval>("iv")
            .map(|i| (i.micros, i.days, i.months)),
    ))
}

const MYSQL_TABLE: &str = "CREATE TABLE sdk_types (ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT,
    su SMALLINT UNSIGNED, mi MEDIUMINT, ii INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
    f FLOAT, d DOUBLE, vc VARCHAR(20), tx TEXT, vb VARBINARY(8), bl BLOB, nothing INT, dt DATETIME)";

fn mysql(address: &str) -> Outcome {
    use spin_sdk::mysql::{Connection, Decode, ParameterValue as P};
    let c = Connection::open(address).map_err(shown)?;
    c.execute("DROP TABLE IF EXISTS sdk_types", &[])
        .map_err(shown)?;
    c.execute(MYSQL_TABLE, &[]).map_err(shown)?;
    c.execute(
        "INSERT INTO sdk_types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2024-02-29 13:14:15')",
        &[
            P::Int8(-8),
            P::Uint8(200),
            P::Int16(-16),
            P::Uint16(60000),
            P::Int32(-8388608),
            P::Int32(i32::MIN),
            P::Uint32(4_000_000_000),
            P::Int64(i64::MIN),
            P::Uint64(u64::MAX),
            P::Floating32(1.5),
            P::Floating64(-2.25),
            P::Str("héllo".into()),
            P::Str("long text".into()),
            P::Binary(vec![0, 1, 255]),
            P::Binary(vec![9, 9, 9]),
            P::DbNull,
        ],
    )
    .map_err(shown)?;
    let rows = c
        .query(
            "SELECT ti, tu, si, su, mi, ii, iu, bi, bu, f, d, vc, tx, vb, bl, nothing FROM sdk_types WHERE tu = ?",
            &[P::Uint8(200)],
        )
        .map_err(shown)?;
    let mut out = String::new();
    for column in &rows.columns {
        writeln!(out, "column {} {:?}", column.name, column.data_type).unwrap();
    }
    let row = rows.rows.first().ok_or("no row")?;
    writeln!(out, "values {row:?}").unwrap();
    writeln!(
        out,
        "decoded {:?} {:?} {:?} {:?} {:?} {:?}",
        i8::decode(&row[0]).map_err(shown)?,
        u64::decode(&row[8]).map_err(shown)?,
        f32::decode(&row[9]).map_err(shown)?,
        String::decode(&row[11]).map_err(shown)?,
        Vec::<u8>::decode(&row[13]).map_err(shown)?,
        Option::<i32>::decode(&row[15]).map_err(shown)?,
    )
    .unwrap();
    let date = c.query("SELECT dt FROM sdk_types", &[]);
    writeln!(out, "datetime {date:?}").unwrap();
    let cast = c
        .query("SELECT CAST(dt AS CHAR) AS dt FROM sdk_types", &[])
        .map_err(shown)?;
    writeln!(out, "cast {:?}", cast.rows).unwrap();
    Ok(out)
}

/// Runs the statement in the body as a query on a fresh connection.
fn mysql_query(address: &str, statement: &str) -> Outcome {
    let c = spin_sdk::mysql::Connection::open(address).map_err(shown)?;
    let rows = c.query(statement, &[]).map_err(shown)?;
    Ok(format!("{:?}\n", rows.rows))
}

/// Runs the statement in the body as a query on a fresh PostgreSQL connection (version 4).
fn pg_query(address: &str, statement: &str) -> Outcome {
    let c = spin_sdk::pg4::Connection::open(address).map_err(shown)?;
    let rows = c.query(statement, &[]).map_err(shown)?;
    Ok(format!("{:?}\n", rows.rows))
}

fn mqtt(address: &str, topic: &str, qos: &str, payload: &str) -> Outcome {
    use spin_sdk::mqtt::{Connection, Qos};
    let qos = match qos {
        "0" => Qos::AtMostOnce,
        "2" => Qos::ExactlyOnce,
        _ => Qos::AtLeastOnce,
    };
    let c = Connection::open(address, "", "", 30).map_err(shown)?;
    c.publish(topic, payload.as_bytes(), qos).map_err(shown)?;
    Ok("published".into())
}

fn llm() -> Outcome {
    use spin_sdk::llm;
    let inferred = llm::infer(llm::InferencingModel::Llama2Chat, "hello");
    let embedded =
        llm::generate_embeddings(llm::EmbeddingModel::AllMiniLmL6V2, &["hello".to_string()]);
    Ok(format!(
        "infer {:?}\nembeddings {:?}\n",
        inferred.map(|r| r.text),
        embedded.map(|r| r.embeddings.len())
    ))
}

fn kv(store: &str) -> Outcome {
    use spin_sdk::key_value::Store;
    let store = if store.is_empty() {
        Store::open_default()
    } else {
        Store::open(store)
    }
    .map_err(shown)?;
    let mut out = String::new();
    store.set("sdk-key", b"value").map_err(shown)?;
    writeln!(out, "get {:?}", store.get("sdk-key").map_err(shown)?).unwrap();
    writeln!(out, "exists {:?}", store.exists("sdk-key").map_err(shown)?).unwrap();
    store
        .set_json("sdk-json", &serde_json::json!({"n": 1}))
        .map_err(shown)?;
    let json: Option<serde_json::Value> = store.get_json("sdk-json").map_err(shown)?;
    writeln!(out, "json {:?}", json.map(|j| j.to_string())).unwrap();
    let mut keys = store.get_keys().map_err(shown)?;
    keys.sort();
    writeln!(out, "keys {keys:?}").unwrap();
    store.delete("sdk-key").map_err(shown)?;
    writeln!(
        out,
        "after delete {:?}",
        store.exists("sdk-key").map_err(shown)?
    )
    .unwrap();
    Ok(out)
}

fn sqlite(database: &str) -> Outcome {
    use spin_sdk::sqlite::{Connection, Value};
    let db = if database.is_empty() {
        Connection::open_default()
    } else {
        Connection::open(database)
    }
    .map_err(shown)?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB, score REAL, absent TEXT)",
        &[],
    )
    .map_err(shown)?;
    db.execute(
        "INSERT INTO notes (body, data, score, absent) VALUES (?, ?, ?, ?)",
        &[
            Value::Text("héllo".into()),
            Value::Blob(vec![0, 255]),
            Value::Real(0.5),
            Value::Null,
        ],
    )
    .map_err(shown)?;
    let rows = db
        .execute(
            "SELECT id, body, data, score, absent FROM notes ORDER BY id",
            &[],
        )
        .map_err(shown)?;
    let mut out = format!("columns {:?}\n", rows.columns);
    for row in rows.rows() {
        writeln!(
            out,
            "row {:?} {:?} {:?} {:?}",
            row.get::<i64>("id"),
            row.get::<&str>("body"),
            row.get::<&[u8]>("data"),
            row.get::<f64>("score"),
        )
        .unwrap();
    }
    Ok(out)
}
