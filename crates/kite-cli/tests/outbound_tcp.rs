//! TCP through `wasi:sockets`: connections only to addresses a `tcp://` rule allows (names
//! resolved at load), blocked networks refused, no listening, and the connection cap.

mod common;
use common::{Server, TestApp};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A loopback server answering each line with `echo: <line>`; runs until the test ends.
async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = write.write_all(format!("echo: {line}\n").as_bytes()).await;
                }
            });
        }
    });
    port
}

fn app(rules: &str) -> TestApp {
    TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"tcp\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = \"PROBE\"\nallowed_outbound_hosts = [{rules}]\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_addresses_are_reached() {
    let allowed = echo_server().await;
    let other = echo_server().await;
    let app = app(&format!(
        "\"tcp://127.0.0.1:{allowed}\", \"tcp://localhost:{other}\""
    ));
    let server = Server::start(&app);
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{allowed}&send=hi"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "echo: hi"));
    // A name in a rule stands for the addresses it resolved to at load.
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{other}&send=named"))
        .await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "echo: named"));
    // Another port of the same host is not allowed.
    let unlisted = echo_server().await;
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{unlisted}&send=x"))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    server.wait_for_log(&format!(
        "denied TCP connection to 127.0.0.1:{unlisted}: add \"tcp://127.0.0.1:{unlisted}\""
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_tcp_rule_sockets_are_off_and_blocked_networks_hold() {
    let port = echo_server().await;
    let http_only = app("\"http://127.0.0.1:*\"");
    let server = Server::start(&http_only);
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{port}&send=x"))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    drop(server);

    let blocked = app("\"tcp://127.0.0.1:*\"");
    std::fs::write(
        blocked.path().join("rc.toml"),
        "[outbound_networking]\nblock_networks = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    let server = Server::start_with(
        &blocked,
        &[
            "--runtime-config",
            blocked.path().join("rc.toml").to_str().unwrap(),
        ],
    );
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{port}&send=x"))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cannot_open_more_than_its_share_of_connections() {
    let port = echo_server().await;
    let app = app(&format!("\"tcp://127.0.0.1:{port}\""));
    let server = Server::start(&app);
    let reply = server
        .get(&format!("/tcp-hold?addr=127.0.0.1:{port}&n=40"))
        .await;
    assert_eq!(reply.body, "opened 32");
    server.wait_for_log("the connection cap is reached");
    // Given back when the instance ends.
    let reply = server
        .get(&format!("/tcp-hold?addr=127.0.0.1:{port}&n=5"))
        .await;
    assert_eq!(reply.body, "opened 5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_ranges_and_templated_rules_are_applied() {
    let port = echo_server().await;
    // A range that ends at the port excludes it (Spin's reading); one past it includes it.
    let excluding = app(&format!("\"tcp://127.0.0.1:{}..{port}\"", port - 5));
    let server = Server::start(&excluding);
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{port}&send=x"))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    drop(server);
    let including = app(&format!("\"tcp://127.0.0.1:{}..{}\"", port - 5, port + 1));
    let server = Server::start(&including);
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{port}&send=x"))
        .await;
    assert_eq!(reply.body, "echo: x");
    drop(server);
    // A rule templated on a variable, resolved when the app starts.
    let templated = TestApp::spin(
        "spin_manifest_version = 2\n[application]\nname = \"tcp\"\n\
         [variables]\necho_port = { default = \"1\" }\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = \"PROBE\"\n\
         allowed_outbound_hosts = [\"tcp://127.0.0.1:{{ echo_port }}\"]\n",
    );
    let cache = templated.path().join(".cache");
    let mut command = common::kite();
    command
        .env("SPIN_VARIABLE_ECHO_PORT", port.to_string())
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            cache.to_str().unwrap(),
            "-f",
        ])
        .arg(templated.path());
    let server = Server::spawn(command);
    let reply = server
        .get(&format!("/tcp?addr=127.0.0.1:{port}&send=t"))
        .await;
    assert_eq!(reply.body, "echo: t");
}
