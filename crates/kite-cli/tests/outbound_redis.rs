//! Outbound Redis (`fermyon:spin/redis`) against a real redis-server: every operation, the
//! allowed-hosts check, blocked networks, refused server commands and the connection cap.

mod common;
use common::{RedisServer, Server, TestApp};

fn app(rules: &str) -> TestApp {
    TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"r\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = \"PROBE\"\nallowed_outbound_hosts = [{rules}]\n"
    ))
}

fn call(address: &str, query: &str) -> String {
    format!("/redis?address={address}&{query}")
}

#[tokio::test]
async fn every_operation_reaches_the_server() {
    let redis = RedisServer::start();
    let app = app(&format!("\"redis://127.0.0.1:{}\"", redis.port));
    let server = Server::start(&app);
    let url = redis.url();
    for (query, expected) in [
        ("op=set&key=greeting&value=hello", "ok"),
        ("op=get&key=greeting", "hello"),
        ("op=get&key=missing", "none"),
        ("op=incr&key=n", "1"),
        ("op=incr&key=n", "2"),
        ("op=sadd&key=s&values=a,b,c", "3"),
        ("op=srem&key=s&values=b", "1"),
        ("op=smembers&key=s", "a,c"),
        ("op=publish&channel=news&value=x", "ok"),
        ("op=del&keys=greeting,n", "2"),
        (
            "op=execute&command=SET&args=k,v",
            "[RedisResult::Status(\"OK\")]",
        ),
        (
            "op=execute&command=MGET&args=k,missing",
            "[RedisResult::Binary([118]), RedisResult::Nil]",
        ),
        (
            "op=execute&command=INCRBY&args=c,5",
            "[RedisResult::Int64(5)]",
        ),
    ] {
        let reply = server.get(&call(&url, query)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, expected),
            "{query}"
        );
    }
    // A type error is the interface's type error.
    let reply = server.get(&call(&url, "op=incr&key=s")).await;
    assert!(reply.body.contains("error:"), "{}", reply.body);
}

#[tokio::test]
async fn only_allowed_servers_and_data_commands() {
    let redis = RedisServer::start();
    let allowed = RedisServer::start();
    let app = app(&format!("\"redis://127.0.0.1:{}\"", allowed.port));
    let server = Server::start(&app);
    let reply = server.get(&call(&redis.url(), "op=get&key=k")).await;
    assert!(reply.body.contains("InvalidAddress"), "{}", reply.body);
    server.wait_for_log(&format!(
        "add \"redis://127.0.0.1:{}\" to `allowed_outbound_hosts`",
        redis.port
    ));
    for command in [
        "CONFIG",
        "config",
        "SHUTDOWN",
        "MONITOR",
        "SUBSCRIBE",
        "DEBUG",
    ] {
        let reply = server
            .get(&call(
                &allowed.url(),
                &format!("op=execute&command={command}&args=GET,dir"),
            ))
            .await;
        assert_eq!(reply.status, 500, "{command}: {}", reply.body);
        assert!(
            reply.body.contains("not allowed"),
            "{command}: {}",
            reply.body
        );
    }
    server.wait_for_log("acts on the server, not on data");
    // The server is still up and serving data.
    let reply = server.get(&call(&allowed.url(), "op=incr&key=alive")).await;
    assert_eq!(reply.body, "1");
}

#[tokio::test]
async fn blocked_networks_and_the_connection_cap_hold() {
    let redis = RedisServer::start();
    let app = app("\"redis://127.0.0.1:*\"");
    let server = Server::start(&app);
    let reply = server.get(&call(&redis.url(), "op=hold&n=40")).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.starts_with("opened 31,"), "{}", reply.body);
    assert!(reply.body.contains("TooManyConnections"), "{}", reply.body);
    // Closed with the instance: the next request has its own places.
    let reply = server.get(&call(&redis.url(), "op=hold&n=3")).await;
    assert_eq!(reply.body, "holding 4");
    drop(server);
    // A permitted name that resolves into a blocked network is refused, naming the rule.
    let blocked_app = self::app(&format!("\"redis://localhost:{}\"", redis.port));
    std::fs::write(
        blocked_app.path().join("rc.toml"),
        "[outbound_networking]\nblock_networks = [\"private\"]\n",
    )
    .unwrap();
    let blocked = Server::start_with(
        &blocked_app,
        &[
            "--runtime-config-file",
            blocked_app.path().join("rc.toml").to_str().unwrap(),
        ],
    );
    let reply = blocked
        .get(&call(
            &format!("redis://localhost:{}", redis.port),
            "op=get&key=k",
        ))
        .await;
    assert!(reply.body.contains("InvalidAddress"), "{}", reply.body);
    blocked.wait_for_log("in the blocked network \"private\"");
}
