//! Deny by default, over a real server: outbound HTTP only to allowed hosts, files only
//! from granted directories, environment only from the manifest, guest output in the log.

mod common;
use common::{Server, TestApp};
use http_body_util::Full;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

/// A local upstream: `/redirect` answers 302, everything else "upstream says hi".
async fn start_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let response = if req.uri().path() == "/redirect" {
                            http::Response::builder()
                                .status(302)
                                .header("location", "/elsewhere")
                                .body(Full::new(bytes::Bytes::from_static(b"moved")))
                        } else {
                            http::Response::builder()
                                .body(Full::new(bytes::Bytes::from_static(b"upstream says hi")))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn outbound_requests_go_only_to_allowed_hosts() {
    let upstream = start_upstream().await;
    let app = TestApp::probe(&format!(
        "[[route]]\npath = \"/...\"\ncomponent = \"caller\"\n[component.caller]\nsource = \"PROBE\"\nallowed_outbound_hosts = [\"http://127.0.0.1:{}\"]\n",
        upstream.port()
    ));
    let server = Server::start(&app);

    let allowed = server
        .get(&format!(
            "/outbound?url=http://127.0.0.1:{}/x",
            upstream.port()
        ))
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(allowed.body, "status: 200\nupstream says hi");

    let redirect = server
        .get(&format!(
            "/outbound?url=http://127.0.0.1:{}/redirect",
            upstream.port()
        ))
        .await;
    assert_eq!(
        redirect.body, "status: 302\nmoved",
        "redirects are returned, not followed"
    );

    let other_host = server
        .get(&format!(
            "/outbound?url=http://localhost:{}/x",
            upstream.port()
        ))
        .await;
    assert_eq!(other_host.status, 502, "{}", other_host.body);
    assert!(
        other_host.body.contains("HttpRequestDenied"),
        "{}",
        other_host.body
    );
    let log = server.wait_for_log("denied outbound request");
    assert!(
        log.contains(&format!(
            "add \"http://localhost:{}\" to `allowed_outbound_hosts` of component `caller`",
            upstream.port()
        )),
        "{log}"
    );

    let other_port = server.get("/outbound?url=http://127.0.0.1:1/x").await;
    assert!(
        other_port.body.contains("HttpRequestDenied"),
        "{}",
        other_port.body
    );
}

#[tokio::test]
async fn a_component_without_grants_can_reach_nothing() {
    let upstream = start_upstream().await;
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"bare\"\n[component.bare]\nsource = \"PROBE\"\n",
    );
    let server = Server::start(&app);
    let denied = server
        .get(&format!(
            "/outbound?url=http://127.0.0.1:{}/x",
            upstream.port()
        ))
        .await;
    assert!(denied.body.contains("HttpRequestDenied"), "{}", denied.body);
    let env = server.get("/env").await;
    assert_eq!(
        (env.status, env.body.as_str()),
        (200, ""),
        "no host environment leaks in"
    );
    let file = server.get("/read?path=/etc/passwd").await;
    assert_eq!(file.status, 404, "{}", file.body);
}

#[tokio::test]
async fn files_are_visible_only_where_granted() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/files/...\"\ncomponent = \"files\"\n[[route]]\npath = \"/none/...\"\ncomponent = \"none\"\n\
         [component.files]\nsource = \"PROBE\"\n\
         files = [{ source = \"static\", destination = \"/static\" }, { source = \"data\", destination = \"/data\", writable = true }]\n\
         [component.none]\nsource = \"PROBE\"\n",
    );
    let static_dir = app.path().join("static");
    std::fs::create_dir(&static_dir).unwrap();
    std::fs::write(static_dir.join("hello.txt"), "static hello").unwrap();
    std::os::unix::fs::symlink(app.path().join("kite.toml"), static_dir.join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc", static_dir.join("etc")).unwrap();
    std::fs::create_dir(app.path().join("data")).unwrap();
    let server = Server::start(&app);

    let granted = server.get("/files/read?path=/static/hello.txt").await;
    assert_eq!(
        (granted.status, granted.body.as_str()),
        (200, "static hello")
    );
    for escape in [
        "/static/../kite.toml",
        "/static/escape",
        "/static/etc/passwd",
        "/etc/passwd",
        "/static/../../../../etc/passwd",
    ] {
        let reply = server.get(&format!("/files/read?path={escape}")).await;
        assert_eq!(
            reply.status, 404,
            "{escape} must not be readable: {}",
            reply.body
        );
    }
    let read_only = server.get("/files/write?path=/static/new.txt").await;
    assert_eq!(read_only.status, 403, "{}", read_only.body);
    assert!(!static_dir.join("new.txt").exists());

    let writable = server.get("/files/write?path=/data/out.txt").await;
    assert_eq!(writable.status, 200, "{}", writable.body);
    assert_eq!(
        std::fs::read_to_string(app.path().join("data/out.txt")).unwrap(),
        "written by probe"
    );

    let ungranted = server.get("/none/read?path=/static/hello.txt").await;
    assert_eq!(ungranted.status, 404, "{}", ungranted.body);
}

#[tokio::test]
async fn only_listed_environment_variables_are_visible() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"env\"\n[component.env]\nsource = \"PROBE\"\nenvironment = { GREETING = \"hi\", EMPTY = \"\" }\n",
    );
    let server = Server::start(&app);
    let reply = server.get("/env").await;
    let mut vars: Vec<&str> = reply.body.lines().collect();
    vars.sort();
    assert_eq!(vars, vec!["EMPTY=", "GREETING=hi"]);
    assert!(
        std::env::var("PATH").is_ok(),
        "the host has variables that must not leak"
    );
}

#[tokio::test]
async fn guest_output_goes_to_the_log_tagged_with_the_component_and_request() {
    let app = TestApp::probe("[[route]]\npath = \"/...\"\ncomponent = \"talker\"\n[component.talker]\nsource = \"PROBE\"\n");
    let server = Server::start(&app);
    // The second request runs in an instance built ahead (after the first response was
    // sent), before its request id existed.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reply = server.get("/print").await;
        let id = reply.header("x-kite-request-id").unwrap().to_string();
        let line = server.expect_log_line(&format!("with the guest's stdout tagged {id}"), |l| {
            l.contains("probe says hello on stdout") && l.contains(&id)
        });
        assert!(line.contains("talker"), "{line}");
        server.expect_log_line(&format!("with the guest's stderr tagged {id}"), |l| {
            l.contains("probe says hello on stderr") && l.contains(&id)
        });
    }
    assert!(
        !server.stdout().contains("probe says hello"),
        "guest output stays out of kite's stdout"
    );
}

#[tokio::test]
async fn an_outbound_response_whose_body_comes_later_is_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that sends the head at once and the body a moment later.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = stream.write_all(b"later body").await;
            });
        }
    });
    let app = TestApp::probe(&format!(
        "[[route]]\npath = \"/...\"\ncomponent = \"caller\"\n[component.caller]\nsource = \"PROBE\"\nallowed_outbound_hosts = [\"http://127.0.0.1:{port}\"]\n"
    ));
    let server = Server::start(&app);
    let reply = server
        .get(&format!("/outbound?url=http://127.0.0.1:{port}/"))
        .await;
    assert_eq!(reply.body, "status: 200\nlater body");
}
