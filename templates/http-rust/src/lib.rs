//! An HTTP handler component for Kite (WASI 0.3, `wasi:http/handler@0.3.0`): answers every
//! request with a greeting, its body written by a task that runs after the response is
//! returned.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct Handler;
wasip3::http::service::export!(Handler);

impl wasip3::exports::http::handler::Guest for Handler {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        println!("handling {path}");

        let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
            .map_err(|_| ErrorCode::InternalError(None))?;
        let (mut body, contents) = wit_stream::new();
        let (trailers_tx, trailers) = wit_future::new(|| Ok(None));
        drop(trailers_tx);
        let (response, _sent) = Response::new(headers, Some(contents), trailers);
        wasip3::spawn(async move {
            body.write_all(b"Hello from Kite\n".to_vec()).await;
        });
        Ok(response)
    }
}
