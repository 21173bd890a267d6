//! A visit counter: each request atomically adds one to `visits` in the `default`
//! key-value store and answers with the new count.

use std::io::Write;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod kite {
    wit_bindgen::generate!({ path: "../../wit", world: "kite:host/wasi-keyvalue", generate_all });
}
use kite::wasi::keyvalue::{atomics, store};

struct Counter;
wasip2::http::proxy::export!(Counter);

fn count_visit() -> Result<i64, store::Error> {
    let bucket = store::open("default")?;
    // One atomic step on the host: parallel requests never lose a visit.
    atomics::increment(&bucket, "visits", 1)
}

impl Guest for Counter {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, text) = match count_visit() {
            Ok(visits) => (200, format!("visit number {visits}\n")),
            Err(e) => (500, format!("key-value error: {e:?}\n")),
        };
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
}
