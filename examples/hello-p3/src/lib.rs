//! Hello world as a WASI 0.3 handler (`wasi:http/handler@0.3.0`): answers every request
//! with the `GREETING` its manifest grants, like examples/hello-rust does with WASI 0.2.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

struct Hello;
wasip3::http::service::export!(Hello);

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(_request: Request) -> Result<Response, ErrorCode> {
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
        let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
            .map_err(|_| ErrorCode::InternalError(None))?;
        let (mut body, contents) = wit_stream::new();
        let (trailers_tx, trailers) = wit_future::new(|| Ok(None));
        drop(trailers_tx);
        let (response, _sent) = Response::new(headers, Some(contents), trailers);
        wasip3::spawn(async move {
            body.write_all(format!("{greeting}\n").into_bytes()).await;
        });
        Ok(response)
    }
}
