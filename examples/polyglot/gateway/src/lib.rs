//! The polyglot app's front door (Rust): checks the caller's token, sends the posted text
//! to the Python component to be analysed, and the analysis to the JavaScript component to
//! be rendered, both through in-process service chaining; answers with the page.

use std::io::{Read, Write};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wit_bindgen::generate!({ path: "wit", world: "gateway", generate_all });

struct Gateway;
wasip2::http::proxy::export!(Gateway);

const USAGE: &str = "POST some text to /report with `Authorization: Bearer <api_token>`\n";

impl Guest for Gateway {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        if path != "/report" || !matches!(request.method(), Method::Post) {
            return respond(out, 200, "text/plain", USAGE.as_bytes());
        }
        if !authorized(&request) {
            return respond(out, 401, "text/plain", b"missing or wrong bearer token\n");
        }
        let text = read_body(request);
        let page = post("transform", "application/json", &text)
            .and_then(|analysis| post("render", "text/html", &analysis));
        match page {
            Ok(page) => respond(out, 200, "text/html; charset=utf-8", &page),
            Err(why) => respond(out, 502, "text/plain", format!("{why}\n").as_bytes()),
        }
    }
}

/// Whether the request carries the app's token, which only this component is granted.
fn authorized(request: &IncomingRequest) -> bool {
    let Ok(Some(token)) = wasi::config::store::get("api_token") else {
        return false;
    };
    let expected = format!("Bearer {token}");
    request
        .headers()
        .get("authorization")
        .iter()
        .any(|value| value.as_slice() == expected.as_bytes())
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume() {
        if let Ok(mut stream) = body.stream() {
            let _ = stream.read_to_end(&mut bytes);
        }
    }
    bytes
}

/// POSTs `body` to the app's component `component`; its response body, or why not.
fn post(component: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let headers = Fields::from_list(&[("content-type".into(), content_type.as_bytes().to_vec())])
        .map_err(|e| format!("{e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let _ = request.set_method(&Method::Post);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(&format!("{component}.spin.internal")));
    let _ = request.set_path_with_query(Some("/"));
    let outgoing = request.body().map_err(|_| "no request body".to_string())?;
    let future = outgoing_handler::handle(request, None)
        .map_err(|code| format!("{component}: {code:?}"))?;
    {
        let mut stream = outgoing.write().map_err(|_| "no body stream".to_string())?;
        stream.write_all(body).map_err(|e| e.to_string())?;
        stream.flush().map_err(|e| e.to_string())?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| format!("{code:?}"))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("{component}: {code:?}")),
        _ => return Err(format!("{component}: no response")),
    };
    if response.status() != 200 {
        return Err(format!("{component} answered {}", response.status()));
    }
    let mut bytes = Vec::new();
    let body = response.consume().map_err(|_| "no response body".to_string())?;
    body.stream()
        .map_err(|_| "no response stream".to_string())?
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".into(), content_type.as_bytes().to_vec())])
        .expect("valid headers");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let outgoing = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    {
        let mut stream = outgoing.write().expect("a body has one stream");
        let _ = stream.write_all(body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
