//! Hello world for Kite: answers every request with the `GREETING` its manifest grants.

use std::io::Write;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;
wasip2::http::proxy::export!(Hello);

impl Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
        let headers = Fields::new();
        let _ = headers.append("content-type", b"text/plain");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        let mut stream = body.write().expect("a body has one stream");
        let _ = writeln!(stream, "{greeting}");
        let _ = stream.flush();
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}
