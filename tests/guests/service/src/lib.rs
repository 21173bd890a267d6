//! A WASI 0.3 HTTP handler (`wasi:http/handler@0.3.0`) for Kite's tests: streaming bodies
//! both ways, trailers, async host calls, work after the response, and ways to fail.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::StreamResult;
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Service);

struct Service;

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path_and_query = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query.as_str(), ""));
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        let number = |name: &str, default: u64| {
            param(name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        match path {
            "/hello" => Ok(text("Hello from a WASI 0.3 handler\n")),
            "/echo" => Ok(echo(request)),
            "/trailers" => Ok(with_trailers()),
            "/stream" => Ok(stream(number("chunks", 3), number("pause_ms", 1))),
            "/sleep" => {
                let ms = number("ms", 10);
                wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
                Ok(text(&format!("slept {ms} ms\n")))
            }
            "/env" => {
                let name = param("name").unwrap_or_default();
                let value = wasip3::cli::environment::get_environment()
                    .into_iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value);
                Ok(text(&format!("{name}={}\n", value.unwrap_or_default())))
            }
            "/fetch" => {
                let url = param("url").unwrap_or_default();
                Ok(text(&fetch(&url).await))
            }
            "/proxy" => {
                // The upstream response's body handed over as this response's, unread.
                let url = param("url").unwrap_or_default();
                let upstream = send_get(&url).await?;
                let (_result_tx, result_rx) = wit_future::new(|| Ok(()));
                let (body, trailers) = Response::consume_body(upstream, result_rx);
                let (response, _sent) = Response::new(Fields::new(), Some(body), trailers);
                Ok(response)
            }
            "/background" => {
                wasip3::spawn(async {
                    wasip3::clocks::monotonic_clock::wait_for(20_000_000).await;
                    println!("background work done");
                });
                Ok(text("answered before the background work\n"))
            }
            "/log" => {
                println!("a line from a WASI 0.3 handler");
                Ok(text("logged\n"))
            }
            "/flood" => {
                // One write of `mib` MiB through `wasi:cli/stdout@0.3.0`, all `byte`.
                let byte = number("byte", 1) as u8;
                let bytes = vec![byte; (number("mib", 64) << 20) as usize];
                let (mut tx, rx) = wit_stream::new();
                let done = wasip3::cli::stdout::write_via_stream(rx);
                let left = tx.write_all(bytes).await;
                drop(tx);
                let _ = done.await;
                Ok(text(&format!("flooded, {} bytes left\n", left.len())))
            }
            "/trap" => panic!("the handler trapped on purpose"),
            "/trap-mid-body" => Ok(trap_mid_body()),
            "/loop" => {
                #[allow(clippy::empty_loop)]
                loop {}
            }
            "/hang" => {
                wasip3::clocks::monotonic_clock::wait_for(3_600 * 1_000_000_000).await;
                Ok(text("woke up\n"))
            }
            "/error-code" => Err(ErrorCode::InternalError(Some("refused on purpose".into()))),
            _ => {
                let response = text("not found\n");
                let _ = response.set_status_code(404);
                Ok(response)
            }
        }
    }
}

/// A response whose body is `body`, written by a spawned task.
fn text(body: &str) -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
        .expect("valid headers");
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    drop(trailers_tx);
    let body = body.as_bytes().to_vec();
    wasip3::spawn(async move {
        body_tx.write_all(body).await;
    });
    response
}

/// The request body back as it arrives, chunk by chunk, then the request's trailers as the
/// response's.
fn echo(request: Request) -> Response {
    // Trailers are sent only if the response declares them, as the request did.
    let declared: Vec<(String, Vec<u8>)> = request
        .get_headers()
        .get("trailer")
        .into_iter()
        .map(|value| ("trailer".to_string(), value))
        .collect();
    let (_request_result_tx, request_result_rx) = wit_future::new(|| Ok(()));
    let (mut request_body, request_trailers) = Request::consume_body(request, request_result_rx);
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let headers = Fields::from_list(&declared).expect("valid headers");
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    wasip3::spawn(async move {
        loop {
            let (result, chunk) = request_body.read(Vec::with_capacity(16 * 1024)).await;
            if !chunk.is_empty() && !body_tx.write_all(chunk).await.is_empty() {
                return;
            }
            if matches!(result, StreamResult::Dropped) {
                break;
            }
        }
        drop(body_tx);
        let trailers = request_trailers.await;
        let _ = trailers_tx.write(trailers).await;
    });
    response
}

fn with_trailers() -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let headers = Fields::from_list(&[("trailer".into(), b"x-checksum".to_vec())])
        .expect("valid headers");
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    wasip3::spawn(async move {
        body_tx.write_all(b"a body with trailers\n".to_vec()).await;
        drop(body_tx);
        let trailers = Fields::from_list(&[("x-checksum".into(), b"abc123".to_vec())])
            .expect("valid trailers");
        let _ = trailers_tx.write(Ok(Some(trailers))).await;
    });
    response
}

/// `chunks` lines, each after a pause in an async host call.
fn stream(chunks: u64, pause_ms: u64) -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
    drop(trailers_tx);
    wasip3::spawn(async move {
        for i in 0..chunks {
            wasip3::clocks::monotonic_clock::wait_for(pause_ms * 1_000_000).await;
            if !body_tx
                .write_all(format!("chunk {i}\n").into_bytes())
                .await
                .is_empty()
            {
                return;
            }
        }
    });
    response
}

fn trap_mid_body() -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
    drop(trailers_tx);
    wasip3::spawn(async move {
        body_tx.write_all(b"the start of a body\n".to_vec()).await;
        panic!("the body writer trapped on purpose");
    });
    response
}

/// A GET of `url` through `wasi:http/client`: its status, or the error code.
async fn fetch(url: &str) -> String {
    match send_get(url).await {
        Ok(response) => format!("status {}\n", response.get_status_code()),
        Err(code) => format!("error {code:?}\n"),
    }
}

async fn send_get(url: &str) -> Result<Response, ErrorCode> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ErrorCode::HttpRequestUriInvalid);
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let (_trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (request, _sent) = Request::new(Fields::new(), None, trailers_rx, None);
    let scheme = match scheme {
        "https" => wasip3::http::types::Scheme::Https,
        _ => wasip3::http::types::Scheme::Http,
    };
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    wasip3::http::client::send(request).await
}
