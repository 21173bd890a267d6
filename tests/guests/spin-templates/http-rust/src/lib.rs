use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;

/// A Spin HTTP component as Spin's `http-rust` template writes it.
#[http_service]
async fn handle_hello_template(req: Request) -> anyhow::Result<impl IntoResponse> {
    println!("Handling request to {:?}", req.headers().get("spin-full-url"));
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello World!".to_string()))
}
