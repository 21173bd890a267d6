//! Outbound HTTP from a Kite component. `/fetch/allowed` calls the URL its manifest allows,
//! `/fetch/denied` one it does not; `/upstream` is the local service being called.

use std::io::{Read, Write};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Outbound;
wasip2::http::proxy::export!(Outbound);

impl Guest for Outbound {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (status, text) = if path.starts_with("/upstream") {
            (200, "hello from the upstream component\n".to_string())
        } else {
            let which = if path.ends_with("/denied") { "DENIED_URL" } else { "ALLOWED_URL" };
            let url = std::env::var(which).unwrap_or_default();
            match fetch(&url) {
                Ok((status, body)) => (200, format!("GET {url} -> {status}\n{body}")),
                Err(ErrorCode::HttpRequestDenied) => (
                    403,
                    format!("GET {url} was denied: it is not in this component's allowed_outbound_hosts\n"),
                ),
                Err(code) => (502, format!("GET {url} failed: {code:?}\n")),
            }
        };
        respond(response_out, status, &text);
    }
}

fn fetch(url: &str) -> Result<(u16, String), ErrorCode> {
    let (scheme, rest) = url.split_once("://").ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let future = outgoing_handler::handle(request, None)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(result)) => result?,
        _ => return Err(ErrorCode::InternalError(Some("no response".into()))),
    };
    let mut body = String::new();
    if let Ok(incoming) = response.consume() {
        if let Ok(mut stream) = incoming.stream() {
            let _ = stream.read_to_string(&mut body);
        }
    }
    Ok((response.status(), body))
}

fn respond(response_out: ResponseOutparam, status: u16, text: &str) {
    let response = OutgoingResponse::new(Fields::new());
    let _ = response.set_status_code(status);
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(response_out, Ok(response));
    let mut stream = body.write().expect("a body has one stream");
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}
