//! A wasi:http component that does what its last path segment says, so tests can drive
//! every host behaviour (echo, traps, loops, memory, files, env, outbound) over HTTP.

use std::io::{Read, Write};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Probe;
wasip2::http::proxy::export!(Probe);

/// Bindings for the configuration interfaces Kite hosts (from the repository's wit/).
mod host {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "kite:host/all",
        generate_all,
    });
}
use host::fermyon::spin::key_value as spin_kv;
use host::fermyon::spin::llm as spin_llm;
use host::fermyon::spin::mqtt as spin_mqtt;
use host::fermyon::spin::postgres as pg2;
use host::spin::postgres3_0_0::postgres as pg3;
use host::spin::postgres4_0_0::postgres as pg4;
use host::fermyon::spin::redis as spin_redis;
use host::fermyon::spin::sqlite as spin_sqlite;
use host::fermyon::spin::variables as spin_variables;
use host::wasi::config::store as config_store;
use host::wasi::keyvalue::{atomics as wasi_atomics, batch as wasi_batch, store as wasi_kv};

impl Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        match path.rsplit('/').next().unwrap_or_default() {
            "echo" => echo(request, out),
            "consume" => {
                let body = request.consume().expect("request body");
                let mut data = Vec::new();
                match Read::read_to_end(&mut body.stream().expect("input stream"), &mut data) {
                    Ok(_) => respond(out, 200, &format!("received {} bytes", data.len())),
                    Err(e) => panic!("reading the request body failed: {e}"),
                }
            }
            "trap" => panic!("the probe was asked to trap"),
            "loop" => loop {
                std::hint::black_box(());
            },
            "alloc" => {
                let mib: usize = param("mb").parse().unwrap_or(1);
                let mut blocks = Vec::new();
                for i in 0..mib {
                    let mut block = vec![0u8; 1 << 20];
                    block[i % 1024] = 1;
                    blocks.push(block);
                }
                respond(out, 200, &format!("allocated {} MiB", blocks.len()));
            }
            "handles" => {
                // Host-side resources: each `fields` lives in the host's table.
                let count: usize = param("n").parse().unwrap_or(1);
                let mut all = Vec::new();
                for _ in 0..count {
                    let fields = Fields::new();
                    let _ = fields.append("x-padding", &[b'a'; 8192]);
                    all.push(fields);
                }
                respond(out, 200, &format!("holding {} handles", all.len()));
            }
            "config" => match config_store::get(&param("key")) {
                Ok(Some(value)) => respond(out, 200, &value),
                Ok(None) => respond(out, 404, "none"),
                Err(e) => respond(out, 500, &format!("error: {e:?}")),
            },
            "config-all" => match config_store::get_all() {
                Ok(mut pairs) => {
                    pairs.sort();
                    let lines: Vec<String> =
                        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    respond(out, 200, &lines.join("\n"))
                }
                Err(e) => respond(out, 500, &format!("error: {e:?}")),
            },
            "spin-variable" => match spin_variables::get(&param("name")) {
                Ok(value) => respond(out, 200, &value),
                Err(e) => respond(out, 404, &format!("error: {e:?}")),
            },
            "sql" => {
                let (status, reply) = sql(&param("db"), &body_text(request));
                respond(out, status, &reply)
            }
            "sql-steps" => {
                let (status, reply) = sql_steps(&param("db"), &body_text(request));
                respond(out, status, &reply)
            }
            "kv" => {
                let (status, text) = key_value(
                    &param("label"),
                    &param("op"),
                    &param("key"),
                    &param("value"),
                );
                respond(out, status, &text)
            }
            "remember" => respond(out, 200, &remember(&param("value"))),
            "redis" => {
                let (status, text) = redis(&param("address"), &param("op"), &param);
                respond(out, status, &text)
            }
            "pg" => {
                let (status, text) = postgres(
                    &param("address"),
                    &param("v"),
                    &param("op"),
                    &body_text(request),
                );
                respond(out, status, &text)
            }
            "mqtt" => {
                let qos = match param("qos").as_str() {
                    "0" => spin_mqtt::Qos::AtMostOnce,
                    "2" => spin_mqtt::Qos::ExactlyOnce,
                    _ => spin_mqtt::Qos::AtLeastOnce,
                };
                let result = spin_mqtt::Connection::open(&param("address"), "", "", 30)
                    .and_then(|c| c.publish(&param("topic"), param("value").as_bytes(), qos));
                match result {
                    Ok(()) => respond(out, 200, "published"),
                    Err(e) => respond(out, 502, &format!("error: {e:?}")),
                }
            }
            "tcp-hold" => {
                let count: usize = param("n").parse().unwrap_or(1);
                let mut held = Vec::new();
                for _ in 0..count {
                    match std::net::TcpStream::connect(param("addr")) {
                        Ok(stream) => held.push(stream),
                        Err(_) => break,
                    }
                }
                respond(out, 200, &format!("opened {}", held.len()))
            }
            "tcp" => {
                let (status, text) = tcp(&param("addr"), &param("send"));
                respond(out, status, &text)
            }
            "llm" => match spin_llm::infer(&param("model"), "hello", None) {
                Ok(result) => respond(out, 200, &result.text),
                Err(e) => respond(out, 500, &format!("error: {e:?}")),
            },
            "wkv" => {
                let (status, text) = wasi_key_value(&param("label"), &param("op"), &param);
                respond(out, status, &text)
            }
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                respond(out, 200, &vars.join("\n"));
            }
            "info" => {
                let headers = request.headers().entries();
                let mut text = format!(
                    "method: {:?}\npath: {}\nauthority: {}\nscheme: {:?}\n",
                    request.method(),
                    path_with_query,
                    request.authority().unwrap_or_default(),
                    request.scheme(),
                );
                for (name, value) in headers {
                    text.push_str(&format!(
                        "header {name}: {}\n",
                        String::from_utf8_lossy(&value)
                    ));
                }
                respond(out, 200, &text);
            }
            "read" => match std::fs::read_to_string(param("path")) {
                Ok(text) => respond(out, 200, &text),
                Err(e) => respond(out, 404, &format!("error: {e}")),
            },
            "write" => match std::fs::write(param("path"), b"written by probe") {
                Ok(()) => respond(out, 200, "written"),
                Err(e) => respond(out, 403, &format!("error: {e}")),
            },
            "outbound" => outbound(&param("url"), out),
            "sleep" => {
                let ms: u64 = param("ms").parse().unwrap_or(100);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                respond(out, 200, &format!("slept {ms} ms"));
            }
            "print" => {
                println!("probe says hello on stdout");
                eprintln!("probe says hello on stderr");
                respond(out, 200, "printed");
            }
            _ => respond(out, 200, "Hello from Kite"),
        }
    }
}

fn response(status: u16) -> OutgoingResponse {
    let headers = Fields::new();
    if let Ok(route) = std::env::var("ROUTE") {
        let _ = headers.append("x-probe-route", route.as_bytes());
    }
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    response
}

fn respond(out: ResponseOutparam, status: u16, body_text: &str) {
    let response = response(status);
    let body = response.body().expect("outgoing body");
    ResponseOutparam::set(out, Ok(response));
    {
        let mut stream = body.write().expect("body stream");
        stream.write_all(body_text.as_bytes()).expect("write body");
        stream.flush().expect("flush body");
    }
    OutgoingBody::finish(body, None).expect("finish body");
}

fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let incoming = request.consume().expect("request body");
    let response = response(200);
    let body = response.body().expect("outgoing body");
    ResponseOutparam::set(out, Ok(response));
    {
        let mut input = incoming.stream().expect("input stream");
        let mut output = body.write().expect("output stream");
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match Read::read(&mut input, &mut buffer) {
                Ok(0) => break,
                Ok(n) => Write::write_all(&mut output, &buffer[..n]).expect("write echo"),
                Err(e) => panic!("reading the request body failed: {e}"),
            }
        }
        output.flush().expect("flush echo");
    }
    OutgoingBody::finish(body, None).expect("finish echo");
}

fn outbound(url: &str, out: ResponseOutparam) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return respond(out, 502, &format!("error: {code:?}")),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => {
            let status = response.status();
            let body = response.consume().expect("response body");
            let mut text = String::new();
            let _ = body.stream().expect("stream").read_to_string(&mut text);
            respond(out, 200, &format!("status: {status}\n{text}"));
        }
        Some(Ok(Err(code))) => respond(out, 502, &format!("error: {code:?}")),
        other => respond(out, 500, &format!("unexpected: {other:?}")),
    }
}

fn key_value(label: &str, op: &str, key: &str, value: &str) -> (u16, String) {
    let store = match spin_kv::Store::open(label) {
        Ok(store) => store,
        Err(e) => {
            let status = match e {
                spin_kv::Error::AccessDenied => 403,
                spin_kv::Error::NoSuchStore => 404,
                _ => 500,
            };
            return (status, format!("error: {e:?}"));
        }
    };
    let result = match op {
        "get" => store.get(key).map(|v| match v {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => "none".to_string(),
        }),
        "set" => store.set(key, value.as_bytes()).map(|()| "ok".to_string()),
        "delete" => store.delete(key).map(|()| "ok".to_string()),
        "exists" => store.exists(key).map(|b| b.to_string()),
        "keys" => store.get_keys().map(|keys| keys.join(",")),
        _ => return (400, format!("unknown op {op:?}")),
    };
    match result {
        Ok(text) => (200, text),
        Err(e) => (500, format!("error: {e:?}")),
    }
}

/// Stores `value` in a static buffer and dirties a large heap block, replying with what a
/// previous request left behind: a fresh instance must see neither.
fn remember(value: &str) -> String {
    static mut SLOT: [u8; 64] = [0; 64];
    const BLOCK: usize = 512 << 10;
    // SAFETY: a component instance runs one request on one thread.
    let slot = unsafe { &mut *std::ptr::addr_of_mut!(SLOT) };
    let previous: Vec<u8> = slot.iter().copied().take_while(|b| *b != 0).collect();
    let bytes = value.as_bytes();
    let len = bytes.len().min(slot.len() - 1);
    slot[..len].copy_from_slice(&bytes[..len]);
    let layout = std::alloc::Layout::from_size_align(BLOCK, 16).expect("layout");
    // SAFETY: the layout is non-zero; the block is read as bytes and deliberately leaked.
    let heap_clean = unsafe {
        let block = std::alloc::alloc_zeroed(layout);
        let clean = std::slice::from_raw_parts(block, BLOCK)
            .iter()
            .all(|b| *b == 0);
        std::ptr::write_bytes(block, 0xAB, BLOCK);
        clean
    };
    format!(
        "previous={} heap={}",
        String::from_utf8_lossy(&previous),
        if heap_clean { "clean" } else { "dirty" }
    )
}

/// `wasi:keyvalue` operations; parameters `key`, `value`, `delta`, `cursor`, `keys`
/// (comma-separated), `pairs` (`k:v,...`), `n` and `prefix` (for `fill`).
fn wasi_key_value(label: &str, op: &str, param: &dyn Fn(&str) -> String) -> (u16, String) {
    let bucket = match wasi_kv::open(label) {
        Ok(bucket) => bucket,
        Err(e) => {
            let status = match e {
                wasi_kv::Error::AccessDenied => 403,
                wasi_kv::Error::NoSuchStore => 404,
                _ => 500,
            };
            return (status, format!("error: {e:?}"));
        }
    };
    let show = |value: Option<Vec<u8>>| match value {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => "none".to_string(),
    };
    let list = |name: &str| -> Vec<String> {
        param(name)
            .split(',')
            .filter(|k| !k.is_empty())
            .map(String::from)
            .collect()
    };
    let key = param("key");
    let result = match op {
        "get" => bucket.get(&key).map(show),
        "set" => bucket
            .set(&key, param("value").as_bytes())
            .map(|()| "ok".into()),
        "delete" => bucket.delete(&key).map(|()| "ok".into()),
        "exists" => bucket.exists(&key).map(|b| b.to_string()),
        "list" => {
            let cursor = Some(param("cursor")).filter(|c| !c.is_empty());
            bucket.list_keys(cursor.as_deref()).map(|page| {
                format!(
                    "keys: {}\ncursor: {}",
                    page.keys.join(","),
                    page.cursor.unwrap_or_else(|| "none".into())
                )
            })
        }
        "list-all" => list_all(&bucket),
        "increment" => wasi_atomics::increment(&bucket, &key, param("delta").parse().unwrap_or(1))
            .map(|n| n.to_string()),
        "cas-race" => return cas_race(&bucket, &key, &param("value")),
        "cas-increment" => return cas_increment(&bucket, &key),
        "get-many" => wasi_batch::get_many(&bucket, &list("keys")).map(|entries| {
            let shown: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}={}", show(v)))
                .collect();
            shown.join(",")
        }),
        "set-many" => {
            let pairs: Vec<(String, Vec<u8>)> = list("pairs")
                .iter()
                .filter_map(|pair| pair.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            wasi_batch::set_many(&bucket, &pairs).map(|()| "ok".into())
        }
        "delete-many" => wasi_batch::delete_many(&bucket, &list("keys")).map(|()| "ok".into()),
        "fill" => {
            let n: usize = param("n").parse().unwrap_or(0);
            let prefix = param("prefix");
            let pairs: Vec<(String, Vec<u8>)> = (0..n)
                .map(|i| (format!("{prefix}{i:05}"), i.to_string().into_bytes()))
                .collect();
            wasi_batch::set_many(&bucket, &pairs).map(|()| "ok".into())
        }
        _ => return (400, format!("unknown op {op:?}")),
    };
    match result {
        Ok(text) => (200, text),
        Err(e) => (500, format!("error: {e:?}")),
    }
}

/// Walks every page of keys; replies with the page count, the key count and whether the
/// keys came in order without repeats.
fn list_all(bucket: &wasi_kv::Bucket) -> Result<String, wasi_kv::Error> {
    let (mut keys, mut pages, mut cursor) = (Vec::<String>::new(), 0, None);
    loop {
        let page = bucket.list_keys(cursor.as_deref())?;
        pages += 1;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let ordered = keys.windows(2).all(|pair| pair[0] < pair[1]);
    Ok(format!(
        "pages: {pages}\nkeys: {}\nordered: {ordered}",
        keys.len()
    ))
}

/// Takes a CAS handle, changes the key behind its back, and checks that the swap fails with
/// a fresh handle that sees the change and then succeeds.
fn cas_race(bucket: &wasi_kv::Bucket, key: &str, value: &str) -> (u16, String) {
    let run = || -> Result<String, String> {
        let cas = wasi_atomics::Cas::new(bucket, key).map_err(|e| format!("new: {e:?}"))?;
        let before = cas.current().map_err(|e| format!("current: {e:?}"))?;
        bucket
            .set(key, b"intruder")
            .map_err(|e| format!("set: {e:?}"))?;
        let retry = match wasi_atomics::swap(cas, value.as_bytes()) {
            Err(wasi_atomics::CasError::CasFailed(retry)) => retry,
            other => return Err(format!("first swap: {other:?}")),
        };
        let seen = retry
            .current()
            .map_err(|e| format!("retry current: {e:?}"))?;
        wasi_atomics::swap(retry, value.as_bytes()).map_err(|e| format!("second swap: {e:?}"))?;
        let after = bucket.get(key).map_err(|e| format!("get: {e:?}"))?;
        let show = |v: Option<Vec<u8>>| {
            v.map_or("none".into(), |b| String::from_utf8_lossy(&b).into_owned())
        };
        Ok(format!(
            "before: {}\nretry saw: {}\nafter: {}",
            show(before),
            show(seen),
            show(after)
        ))
    };
    match run() {
        Ok(text) => (200, text),
        Err(text) => (500, text),
    }
}

/// Increments a decimal counter by read-modify-swap, retrying on conflict; replies with the
/// new value and how many attempts it took.
fn cas_increment(bucket: &wasi_kv::Bucket, key: &str) -> (u16, String) {
    let mut cas = match wasi_atomics::Cas::new(bucket, key) {
        Ok(cas) => cas,
        Err(e) => return (500, format!("error: {e:?}")),
    };
    for attempt in 1..=1000 {
        let current: i64 = match cas.current() {
            Ok(value) => value.map_or(0, |b| String::from_utf8_lossy(&b).parse().unwrap_or(0)),
            Err(e) => return (500, format!("error: {e:?}")),
        };
        let next = (current + 1).to_string();
        match wasi_atomics::swap(cas, next.as_bytes()) {
            Ok(()) => return (200, format!("{next} after {attempt}")),
            Err(wasi_atomics::CasError::CasFailed(retry)) => cas = retry,
            Err(e) => return (500, format!("error: {e:?}")),
        }
    }
    (500, "gave up after 1000 attempts".into())
}

/// The whole request body as text.
fn body_text(request: IncomingRequest) -> String {
    let body = request.consume().expect("request body");
    let mut text = String::new();
    let _ = Read::read_to_string(&mut body.stream().expect("input stream"), &mut text);
    text
}

/// Body: the statement on the first line, then one parameter per line: `i:42`, `r:1.5`,
/// `t:text`, `b:hex bytes`, `n` (null). Reply: the columns, then one line per row.
fn sql(database: &str, body: &str) -> (u16, String) {
    let mut lines = body.lines();
    let statement = lines.next().unwrap_or_default();
    let parameters: Vec<spin_sqlite::Value> = lines
        .map(|line| match line.split_once(':') {
            Some(("i", v)) => spin_sqlite::Value::Integer(v.parse().unwrap_or(0)),
            Some(("r", v)) => spin_sqlite::Value::Real(v.parse().unwrap_or(0.0)),
            Some(("t", v)) => spin_sqlite::Value::Text(v.to_string()),
            Some(("b", v)) => spin_sqlite::Value::Blob(
                (0..v.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16).ok())
                    .collect(),
            ),
            _ => spin_sqlite::Value::Null,
        })
        .collect();
    let connection = match open_database(database) {
        Ok(connection) => connection,
        Err(reply) => return reply,
    };
    match connection.execute(statement, &parameters) {
        Ok(result) => (200, show_rows(&result)),
        Err(e) => (400, format!("error: {e:?}")),
    }
}

/// Body: one statement per line, run in order on one connection; a line `sleep N` pauses
/// for N milliseconds instead. Reply: each statement's rows or error, in order. The
/// connection is dropped at the end, whatever the statements left open.
fn sql_steps(database: &str, body: &str) -> (u16, String) {
    let connection = match open_database(database) {
        Ok(connection) => connection,
        Err(reply) => return reply,
    };
    let mut text = String::new();
    for line in body.lines() {
        if let Some(ms) = line.strip_prefix("sleep ") {
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
            continue;
        }
        match connection.execute(line, &[]) {
            Ok(result) => text.push_str(&show_rows(&result)),
            Err(e) => text.push_str(&format!("error: {e:?}\n")),
        }
    }
    (200, text)
}

fn open_database(database: &str) -> Result<spin_sqlite::Connection, (u16, String)> {
    spin_sqlite::Connection::open(database).map_err(|e| {
        let status = match e {
            spin_sqlite::Error::AccessDenied => 403,
            spin_sqlite::Error::NoSuchDatabase => 404,
            _ => 500,
        };
        (status, format!("error: {e:?}"))
    })
}

fn show_rows(result: &spin_sqlite::QueryResult) -> String {
    let mut text = format!("columns: {}\n", result.columns.join(","));
    for row in &result.rows {
        let values: Vec<String> = row.values.iter().map(|v| format!("{v:?}")).collect();
        text.push_str(&format!("row: {}\n", values.join(" | ")));
    }
    text
}

/// Runs one `fermyon:spin/redis` operation against `address`.
fn redis(address: &str, op: &str, param: &dyn Fn(&str) -> String) -> (u16, String) {
    let connection = match spin_redis::Connection::open(address) {
        Ok(connection) => connection,
        Err(e) => return (502, format!("error: {e:?}")),
    };
    let key = param("key");
    let list = |name: &str| -> Vec<String> {
        param(name)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let result = match op {
        "set" => connection
            .set(&key, param("value").as_bytes())
            .map(|()| "ok".to_string()),
        "get" => connection.get(&key).map(|v| match v {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => "none".to_string(),
        }),
        "incr" => connection.incr(&key).map(|n| n.to_string()),
        "del" => connection.del(&list("keys")).map(|n| n.to_string()),
        "sadd" => connection.sadd(&key, &list("values")).map(|n| n.to_string()),
        "srem" => connection.srem(&key, &list("values")).map(|n| n.to_string()),
        "smembers" => connection.smembers(&key).map(|mut members| {
            members.sort();
            members.join(",")
        }),
        "publish" => connection
            .publish(&param("channel"), param("value").as_bytes())
            .map(|()| "ok".to_string()),
        "execute" => {
            let arguments: Vec<spin_redis::RedisParameter> = list("args")
                .into_iter()
                .map(|a| match a.parse::<i64>() {
                    Ok(n) => spin_redis::RedisParameter::Int64(n),
                    Err(_) => spin_redis::RedisParameter::Binary(a.into_bytes()),
                })
                .collect();
            connection
                .execute(&param("command"), &arguments)
                .map(|results| format!("{results:?}"))
        }
        "hold" => {
            // Opens more connections, kept until the response is sent.
            let count: usize = param("n").parse().unwrap_or(1);
            let mut held = vec![];
            for i in 0..count {
                match spin_redis::Connection::open(address) {
                    Ok(c) => held.push(c),
                    Err(e) => return (503, format!("opened {i}, then error: {e:?}")),
                }
            }
            Ok(format!("holding {}", held.len() + 1))
        }
        _ => return (400, format!("unknown op {op:?}")),
    };
    match result {
        Ok(text) => (200, text),
        Err(e) => (500, format!("error: {e:?}")),
    }
}

/// Runs the body's statement on PostgreSQL through interface version `version` (2, 3 or 4):
/// `query` (the rows, debug-printed), `execute` (the count), or `roundtrip` (version 4: an
/// insert of one value of every type into the test's `everything` table, read back).
fn postgres(address: &str, version: &str, op: &str, statement: &str) -> (u16, String) {
    let result: Result<String, String> = match version {
        "2" => pg2::Connection::open(address)
            .and_then(|c| match op {
                "execute" => c.execute(statement, &[]).map(|n| n.to_string()),
                _ => c.query(statement, &[]).map(|rows| format!("{:?}\n{:?}", rows.columns, rows.rows)),
            })
            .map_err(|e| format!("{e:?}")),
        "3" => pg3::Connection::open(address)
            .and_then(|c| match op {
                "execute" => c.execute(statement, &[]).map(|n| n.to_string()),
                _ => c.query(statement, &[]).map(|rows| format!("{:?}\n{:?}", rows.columns, rows.rows)),
            })
            .map_err(|e| format!("{e:?}")),
        _ => pg4::Connection::open(address)
            .and_then(|c| match op {
                "execute" => c.execute(statement, &[]).map(|n| n.to_string()),
                "badparam" => c
                    .execute(statement, &[pg4::ParameterValue::Str("not a number".into())])
                    .map(|n| n.to_string()),
                "roundtrip" => {
                    use pg4::{Interval, ParameterValue as P, RangeBoundKind as K};
                    let params = [
                        P::Boolean(true),
                        P::Int16(-7),
                        P::Int32(70_000),
                        P::Int64(-9_000_000_000),
                        P::Floating32(1.5),
                        P::Floating64(-2.25),
                        P::Str("héllo".into()),
                        P::Binary(vec![0, 1, 255]),
                        P::Date((2024, 2, 29)),
                        P::Time((13, 14, 15, 500_000_000)),
                        P::Datetime((1999, 12, 31, 23, 59, 59, 0)),
                        P::Timestamp(1_700_000_000),
                        P::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
                        P::Jsonb(br#"{"a": [1, 2]}"#.to_vec()),
                        P::Decimal("-12345.6789".into()),
                        P::RangeInt32((Some((1, K::Inclusive)), Some((10, K::Exclusive)))),
                        P::RangeInt64((None, Some((5, K::Exclusive)))),
                        P::RangeDecimal((Some(("1.5".into(), K::Inclusive)), Some(("2.5".into(), K::Exclusive)))),
                        P::ArrayInt32(vec![Some(1), None, Some(3)]),
                        P::ArrayInt64(vec![Some(-1)]),
                        P::ArrayDecimal(vec![Some("0.1".into()), None]),
                        P::ArrayStr(vec![Some("a".into()), Some("b c".into())]),
                        P::Interval(Interval { micros: 1_500_000, days: 2, months: 3 }),
                        P::DbNull,
                    ];
                    c.execute(statement, &params).and_then(|_| {
                        c.query("SELECT * FROM everything", &[])
                            .map(|rows| format!("{:?}\n{:?}", rows.columns, rows.rows))
                    })
                }
                _ => c.query(statement, &[]).map(|rows| format!("{:?}\n{:?}", rows.columns, rows.rows)),
            })
            .map_err(|e| format!("{e:?}")),
    };
    match result {
        Ok(text) => (200, text),
        Err(e) => (500, format!("error: {e}")),
    }
}

/// Connects to `address` over TCP (through `wasi:sockets`), sends `text` and a newline,
/// and answers with the line that comes back.
fn tcp(address: &str, text: &str) -> (u16, String) {
    let mut stream = match std::net::TcpStream::connect(address) {
        Ok(stream) => stream,
        Err(e) => return (502, format!("error: {e}")),
    };
    if let Err(e) = writeln!(stream, "{text}") {
        return (502, format!("error: {e}"));
    }
    let mut reply = String::new();
    let mut reader = std::io::BufReader::new(stream);
    match std::io::BufRead::read_line(&mut reader, &mut reply) {
        Ok(_) => (200, reply.trim_end().to_string()),
        Err(e) => (502, format!("error: {e}")),
    }
}
