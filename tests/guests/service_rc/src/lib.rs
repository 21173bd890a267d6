//! A WASI 0.3 HTTP handler built against the release candidate `0.3.0-rc-2026-03-15` (what
//! Spin SDK 6 emits), for Kite's tests.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Service);

struct Service;

impl wasip3::exports::http::handler::Guest for Service {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let (mut body_tx, body_rx) = wit_stream::new();
        let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
        let (response, _sent) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
        drop(trailers_tx);
        wasip3::spawn(async move {
            body_tx
                .write_all(b"Hello from a WASI 0.3 release candidate handler\n".to_vec())
                .await;
        });
        Ok(response)
    }
}
