//! An HTTP component that imports an interface Kite does not host, so loading it must fail
//! with an error naming that import.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

wit_bindgen::generate!({ path: "wit", world: "unhosted" });

struct Unhosted;
wasip2::http::proxy::export!(Unhosted);

impl Guest for Unhosted {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let _thought = kite_test::unhosted::telepathy::read_mind();
        ResponseOutparam::set(out, Ok(OutgoingResponse::new(Fields::new())));
    }
}
