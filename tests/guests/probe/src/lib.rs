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
use host::fermyon::spin::sqlite as spin_sqlite;
use host::fermyon::spin::variables as spin_variables;
use host::wasi::config::store as config_store;

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
                    let lines: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    respond(out, 200, &lines.join("\n"))
                }
                Err(e) => respond(out, 500, &format!("error: {e:?}")),
            },
            "spin-variable" => match spin_variables::get(&param("name")) {
                Ok(value) => respond(out, 200, &value),
                Err(e) => respond(out, 404, &format!("error: {e:?}")),
            },
            "sql" => {
                let body = request.consume().expect("request body");
                let mut text = String::new();
                let _ = Read::read_to_string(&mut body.stream().expect("input stream"), &mut text);
                let (status, reply) = sql(&param("db"), &text);
                respond(out, status, &reply)
            }
            "kv" => {
                let (status, text) = key_value(&param("label"), &param("op"), &param("key"), &param("value"));
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
                    text.push_str(&format!("header {name}: {}\n", String::from_utf8_lossy(&value)));
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
    let _ = request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }));
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
                (0..v.len() / 2).filter_map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16).ok()).collect(),
            ),
            _ => spin_sqlite::Value::Null,
        })
        .collect();
    let connection = match spin_sqlite::Connection::open(database) {
        Ok(connection) => connection,
        Err(e) => {
            let status = match e {
                spin_sqlite::Error::AccessDenied => 403,
                spin_sqlite::Error::NoSuchDatabase => 404,
                _ => 500,
            };
            return (status, format!("error: {e:?}"));
        }
    };
    match connection.execute(statement, &parameters) {
        Ok(result) => {
            let mut text = format!("columns: {}\n", result.columns.join(","));
            for row in result.rows {
                let values: Vec<String> = row.values.iter().map(|v| format!("{v:?}")).collect();
                text.push_str(&format!("row: {}\n", values.join(" | ")));
            }
            (200, text)
        }
        Err(e) => (400, format!("error: {e:?}")),
    }
}
