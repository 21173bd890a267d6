//! Bodies stream through the host: a 100 MiB upload echoed back does not grow the server's
//! memory by 100 MiB, and bodies over the component's limit get 413.

mod common;
use bytes::Bytes;
use common::{Server, TestApp};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

const MIB: usize = 1 << 20;

fn echo_app(limits: &str) -> TestApp {
    TestApp::probe(&format!(
        "[[route]]\npath = \"/...\"\ncomponent = \"echo\"\n[component.echo]\nsource = \"PROBE\"\nlimits = {{ {limits} }}\n"
    ))
}

fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// A chunked body of `chunks` chunks of `size` bytes, produced lazily.
fn chunked_body(
    chunks: usize,
    size: usize,
) -> StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>>> {
    let chunk = Bytes::from(vec![7u8; size]);
    StreamBody::new(futures::stream::iter(0..chunks).map(move |_| Ok(Frame::data(chunk.clone()))))
}

#[tokio::test]
async fn a_100_mib_echo_streams_with_bounded_server_memory() {
    let app = echo_app("max_request_body = \"200MiB\", timeout = \"120s\"");
    let server = Server::start(&app);
    let warm = common::send(
        server.addr,
        http::Method::POST,
        "/echo",
        Bytes::from_static(b"warm"),
    )
    .await;
    assert_eq!(warm.body, "warm");
    let before = peak_rss(server.pid());

    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post("/echo")
        .header("host", "localhost")
        .body(chunked_body(100, MIB))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            assert!(data.iter().all(|&b| b == 7));
            received += data.len();
        }
    }
    assert_eq!(received, 100 * MIB);
    let growth = peak_rss(server.pid()).saturating_sub(before);
    assert!(
        growth < 40 << 20,
        "peak server memory grew by {} MiB",
        growth >> 20
    );
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = echo_app("max_request_body = \"1KiB\"");
    let server = Server::start(&app);
    let declared = common::send(
        server.addr,
        http::Method::POST,
        "/echo",
        Bytes::from(vec![1u8; 2048]),
    )
    .await;
    assert_eq!(declared.status, 413, "{}", declared.body);
    assert!(
        declared.body.contains("max_request_body"),
        "{}",
        declared.body
    );

    let request = http::Request::post("/consume")
        .header("host", "localhost")
        .body(chunked_body(4, 1024))
        .unwrap();
    let chunked = common::send_request(server.addr, request).await;
    assert_eq!(chunked.status, 413, "{}", chunked.body);

    // A guest that starts its response before reading cannot get a 413 any more: its
    // response must then fail visibly rather than end as if complete.
    let request = http::Request::post("/echo")
        .header("host", "localhost")
        .body(chunked_body(4, 1024))
        .unwrap();
    let streamed = common::send_request(server.addr, request).await;
    assert!(
        streamed.status == 413 || streamed.body_failed,
        "{streamed:?}"
    );

    let small = common::send(
        server.addr,
        http::Method::POST,
        "/echo",
        Bytes::from(vec![b'a'; 1024]),
    )
    .await;
    assert_eq!((small.status, small.body.len()), (200, 1024));
}
