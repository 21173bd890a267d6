//! A hostile wasi:http component for Kite's attack suite: each route tries one way out of
//! its grant or one way to make the host hold more than it should, and reports what it got.

use std::io::Write;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::Descriptor;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Attacker;
wasip2::http::proxy::export!(Attacker);

impl Guest for Attacker {
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
                .map(|(_, v)| v.replace("%2F", "/"))
                .unwrap_or_default()
        };
        let (status, text) = match path.rsplit('/').next().unwrap_or_default() {
            "symlink" => symlink(&param("target"), &param("link")),
            "read" => match std::fs::read_to_string(param("path")) {
                Ok(text) => (200, text),
                Err(e) => (404, format!("error: {e}")),
            },
            "list" => match std::fs::read_dir(param("path")) {
                Ok(entries) => {
                    let mut names: Vec<String> = entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    names.sort();
                    (200, names.join("\n"))
                }
                Err(e) => (404, format!("error: {e}")),
            },
            "replace-with-symlink" => replace_with_symlink(&param("dir"), &param("target")),
            "log-flood" => log_flood(param("lines").parse().unwrap_or(100_000)),
            "fields-bomb" => fields_bomb(param("mb").parse().unwrap_or(1024)),
            "fill" => fill_memory(param("mb").parse().unwrap_or(1)),
            "poll-bomb" => poll_bomb(param("n").parse().unwrap_or(4_000_000)),
            "body-bomb" => body_bomb(param("mb").parse().unwrap_or(1024)),
            "recurse" => (200, format!("depth {}", recurse(param("depth").parse().unwrap_or(u64::MAX)))),
            "outbound-bomb" => outbound_bomb(&param("url"), param("n").parse().unwrap_or(1000)),
            _ => (200, "attacker ready".to_string()),
        };
        respond(out, status, &text);
    }
}

/// The preopened directory holding guest path `path`, and `path` relative to it.
fn preopen_for(path: &str) -> Option<(Descriptor, String)> {
    get_directories().into_iter().find_map(|(dir, root)| {
        let rest = path.strip_prefix(root.trim_end_matches('/'))?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        Some((dir, rest.to_string()))
    })
}

/// Creates a symlink at guest path `link` pointing at `target` (e.g. `../../..`, `/etc`),
/// with the raw WASI call, whatever the standard library would allow.
fn symlink(target: &str, link: &str) -> (u16, String) {
    let Some((dir, relative)) = preopen_for(link) else {
        return (404, format!("no preopen holds {link}"));
    };
    match dir.symlink_at(target, &relative) {
        Ok(()) => (200, format!("created {link} -> {target}")),
        Err(e) => (403, format!("error: {e:?}")),
    }
}

/// Moves directory `dir` aside and puts a symlink to `target` in its place.
fn replace_with_symlink(dir: &str, target: &str) -> (u16, String) {
    let Some((preopen, relative)) = preopen_for(dir) else {
        return (404, format!("no preopen holds {dir}"));
    };
    let aside = format!("{relative}.moved");
    if let Err(e) = preopen.rename_at(&relative, &preopen, &aside) {
        return (403, format!("error moving {dir}: {e:?}"));
    }
    match preopen.symlink_at(target, &relative) {
        Ok(()) => (200, format!("{dir} -> {target}")),
        Err(e) => (403, format!("error: {e:?}")),
    }
}

/// Prints `lines` lines, each with a carriage return and a terminal escape in it.
fn log_flood(lines: usize) -> (u16, String) {
    let mut stdout = std::io::stdout().lock();
    for i in 0..lines {
        let _ = writeln!(stdout, "flood {i}\rFORGED kite line \u{1b}[31m{}", "x".repeat(200));
    }
    let _ = stdout.flush();
    (200, format!("printed {lines} lines"))
}

/// Asks the host to hold `mb` MiB of header values, 24 KiB per header map (within any
/// per-map limit), in as many maps as it takes.
fn fields_bomb(mb: u64) -> (u16, String) {
    let value = vec![b'a'; 8 * 1024];
    let mut held = Vec::new();
    let mut bytes = 0u64;
    while bytes < mb << 20 {
        let fields = Fields::new();
        for i in 0..3 {
            if let Err(e) = fields.append(&format!("x-bomb-{i}"), &value) {
                return (507, format!("refused after {} MiB: {e:?}", bytes >> 20));
            }
            bytes += value.len() as u64;
        }
        held.push(fields);
    }
    (200, format!("the host holds {} MiB", bytes >> 20))
}

/// Asks the host to buffer `mb` MiB in outgoing bodies nobody sends: many responses, each
/// body written as far as the host lets it.
fn body_bomb(mb: u64) -> (u16, String) {
    let mut held = Vec::new();
    let mut bytes = 0u64;
    while bytes < mb << 20 {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("outgoing body");
        let stream = body.write().expect("body stream");
        loop {
            let room = match stream.check_write() {
                Ok(0) | Err(_) => break,
                Ok(room) => room.min(1 << 20) as usize,
            };
            if stream.write(&vec![b'b'; room]).is_err() {
                break;
            }
            bytes += room as u64;
        }
        held.push((response, body, stream));
    }
    (200, format!("the host buffers {} MiB", bytes >> 20))
}

/// Polls one hour-long timer repeated `n` times in one list.
fn poll_bomb(n: usize) -> (u16, String) {
    let timer = wasip2::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000);
    let list: Vec<&wasip2::io::poll::Pollable> = std::iter::repeat_n(&timer, n).collect();
    let ready = wasip2::io::poll::poll(&list);
    (200, format!("{} ready", ready.len()))
}

/// Recurses `depth` times (or until the stack overflows).
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    let frame = std::hint::black_box([depth; 64]);
    1 + recurse(frame[depth as usize % 64] - 1)
}

/// Writes to every page of `mb` MiB of fresh linear memory.
fn fill_memory(mb: usize) -> (u16, String) {
    let filled = vec![0x5au8; mb << 20];
    let sum: usize = filled.iter().step_by(4096).map(|&b| b as usize).sum();
    (200, format!("filled {mb} MiB ({sum})"))
}

/// Starts `n` outgoing requests to `url` at once and keeps them all pending.
fn outbound_bomb(url: &str, n: usize) -> (u16, String) {
    let (_, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut pending = Vec::new();
    for i in 0..n {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_method(&Method::Get);
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some("/"));
        match outgoing_handler::handle(request, None) {
            Ok(future) => pending.push(future),
            Err(code) => return (503, format!("refused at request {i}: {code:?}")),
        }
    }
    // Wait for every one of them: refusals by the host arrive as errors here.
    let mut refused = 0;
    for future in &pending {
        future.subscribe().block();
        if let Some(Ok(Err(_))) = future.get() {
            refused += 1;
        }
    }
    (200, format!("started {n}, refused {refused}"))
}

fn respond(out: ResponseOutparam, status: u16, body_text: &str) {
    let response = OutgoingResponse::new(Fields::new());
    let _ = response.set_status_code(status);
    let body = response.body().expect("outgoing body");
    ResponseOutparam::set(out, Ok(response));
    {
        let mut stream = body.write().expect("body stream");
        stream.write_all(body_text.as_bytes()).expect("write body");
        stream.flush().expect("flush body");
    }
    OutgoingBody::finish(body, None).expect("finish body");
}
