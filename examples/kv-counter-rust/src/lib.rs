//! A visit counter: each request reads `visits` from the `default` key-value store,
//! adds one, writes it back and answers with the new count.

use std::io::Write;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod kite {
    wit_bindgen::generate!({ path: "../../wit", world: "kite:host/key-value", generate_all });
}
use kite::fermyon::spin::key_value::{Error, Store};

struct Counter;
wasip2::http::proxy::export!(Counter);

fn count_visit() -> Result<u64, Error> {
    let store = Store::open("default")?;
    let previous = store
        .get("visits")?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(0);
    let visits = previous + 1;
    store.set("visits", visits.to_string().as_bytes())?;
    Ok(visits)
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
