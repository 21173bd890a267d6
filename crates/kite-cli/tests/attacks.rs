//! The attack suite: hostile guests (tests/guests/attacker, and the probe's raw SQL) try to
//! reach outside their grants or flood the host; each test checks the defence held.

mod common;
use bytes::Bytes;
use common::{guest, up_fails, RedisServer, Server, TestApp};

fn attacker_app(body: &str) -> TestApp {
    let attacker = guest("attacker");
    TestApp::new(&format!(
        "manifest_version = 1\n[app]\nname = \"test\"\n{}",
        body.replace("ATTACKER", &attacker.display().to_string())
    ))
}

#[tokio::test]
async fn sql_cannot_reach_files_or_state_outside_its_database() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"db\"\n\
         [component.db]\nsource = \"PROBE\"\nsqlite_databases = [\"default\"]\n",
    );
    let server = Server::start(&app);
    let outside = tempfile::tempdir().unwrap();
    let evil = outside.path().join("evil.db");
    let copy = outside.path().join("copy.db");
    let kv_file = app.path().join(".kite/key_value/default.sqlite");
    let (status, _) = server.post("/sql?db=default", "CREATE TABLE t (x)").await;
    assert_eq!(status, 200);
    for statement in [
        format!("ATTACH '{}' AS evil", evil.display()),
        format!("ATTACH '{}' AS kv", kv_file.display()),
        format!("VACUUM INTO '{}'", copy.display()),
        "SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')".to_string(),
        "PRAGMA database_list".to_string(),
        "SELECT file FROM pragma_database_list".to_string(),
        "PRAGMA writable_schema = ON".to_string(),
        "PRAGMA journal_mode = OFF".to_string(),
        "CREATE TEMP TRIGGER spy AFTER INSERT ON t BEGIN SELECT 1; END".to_string(),
        "CREATE TRIGGER temp.spy BEFORE INSERT ON t BEGIN SELECT RAISE(IGNORE); END".to_string(),
        "CREATE TABLE temp.t (shadow)".to_string(),
        // fts3_tokenizer given a bound parameter hands out and takes raw host pointers.
        "SELECT hex(fts3_tokenizer(?))\nt:simple".to_string(),
    ] {
        let (status, body) = server.post("/sql?db=default", &statement).await;
        assert_eq!(status, 400, "`{statement}` was not refused: {body}");
        assert!(body.contains("refused"), "`{statement}`: {body}");
    }
    assert!(
        !evil.exists() && !copy.exists(),
        "a file outside the grant was created"
    );
    // Nothing of the attempts is left on the shared connection for later requests.
    let (status, body) = server
        .post("/sql?db=default", "SELECT count(*) FROM sqlite_temp_master")
        .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "columns: count(*)\nrow: Value::Integer(0)\n")
    );
    assert_eq!(server.get("/").await.body, "Hello from Kite");
}

#[tokio::test]
async fn symlinks_never_lead_out_of_a_writable_grant() {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nfiles = [{ source = \"data\", destination = \"/data\", writable = true }]\n",
    );
    std::fs::create_dir(app.path().join("data")).unwrap();
    std::fs::write(app.path().join("secret.txt"), "host secret").unwrap();
    let server = Server::start(&app);
    for (target, link) in [
        ("..", "/data/up"),
        ("../secret.txt", "/data/s"),
        ("/etc", "/data/etc"),
    ] {
        // Creating the link may or may not be allowed; following it out must never be.
        let _ = server
            .get(&format!("/symlink?target={target}&link={link}"))
            .await;
    }
    for path in [
        "/data/up/secret.txt",
        "/data/s",
        "/data/etc/hostname",
        "/data/up/kite.toml",
    ] {
        let reply = server.get(&format!("/read?path={path}")).await;
        assert_eq!(reply.status, 404, "{path} was readable: {}", reply.body);
    }
    let reply = server.get("/list?path=/data/up").await;
    assert_eq!(
        reply.status, 404,
        "listed outside the grant: {}",
        reply.body
    );
}

#[tokio::test]
async fn a_grant_swapped_for_a_symlink_after_start_is_not_followed() {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nfiles = [{ source = \"public\", destination = \"/public\" }]\n",
    );
    std::fs::create_dir(app.path().join("public")).unwrap();
    std::fs::write(app.path().join("public/index.html"), "granted").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("index.html"), "outside").unwrap();
    let server = Server::start(&app);
    assert_eq!(
        server.get("/read?path=/public/index.html").await.body,
        "granted"
    );
    // The path now leads elsewhere; instances keep the directory opened at load.
    std::fs::rename(app.path().join("public"), app.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), app.path().join("public")).unwrap();
    for _ in 0..3 {
        assert_eq!(
            server.get("/read?path=/public/index.html").await.body,
            "granted"
        );
    }
}

#[test]
fn grants_that_hold_host_state_or_overlap_a_writable_grant_are_refused() {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nfiles = [{ source = \".\", destination = \"/app\" }]\n",
    );
    let error = up_fails(&app, &[]);
    assert!(
        error.contains("kite.toml:9:") && error.contains("component.a.files[0].source"),
        "{error}"
    );
    assert!(
        error.contains("the manifest") && error.contains("holds only the guest"),
        "{error}"
    );

    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nfiles = [{ source = \"data\", destination = \"/data\", writable = true }]\n\
         [component.b]\nsource = \"ATTACKER\"\nfiles = [{ source = \"data/public\", destination = \"/public\" }]\n",
    );
    std::fs::create_dir_all(app.path().join("data/public")).unwrap();
    let error = up_fails(&app, &[]);
    assert!(
        error.contains("component.a.files[0]") && error.contains("component.b.files[0]"),
        "{error}"
    );
    assert!(error.contains("writable"), "{error}");

    // A grant inside the state directory, or a writable one holding component code.
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nfiles = [{ source = \".kite/key_value\", destination = \"/kv\", writable = true }]\n",
    );
    std::fs::create_dir_all(app.path().join(".kite/key_value")).unwrap();
    let error = up_fails(&app, &[]);
    assert!(error.contains("the state directory"), "{error}");
    let code = guest("attacker");
    let app = TestApp::new(
        "manifest_version = 1\n[app]\nname = \"test\"\n[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"bin/attacker.wasm\"\nfiles = [{ source = \"bin\", destination = \"/bin\", writable = true }]\n",
    );
    std::fs::create_dir(app.path().join("bin")).unwrap();
    std::fs::copy(&code, app.path().join("bin/attacker.wasm")).unwrap();
    let error = up_fails(&app, &[]);
    assert!(error.contains("component `a`'s code"), "{error}");

    // A state directory given on the command line is protected too.
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nfiles = [{ source = \"data\", destination = \"/data\" }]\n",
    );
    std::fs::create_dir_all(app.path().join("data")).unwrap();
    let state = app.path().join("data/state");
    let error = up_fails(&app, &["--state-dir", state.to_str().unwrap()]);
    assert!(error.contains("the state directory"), "{error}");
}

#[tokio::test]
async fn redis_labels_never_address_each_others_keys() {
    let redis = RedisServer::start();
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nkey_value_stores = [\"b\", \"b:c\"]\n",
    );
    let config = app.path().join("runtime.toml");
    std::fs::write(
        &config,
        format!(
            "[key_value_store.b]\ntype = \"redis\"\nurl = \"{0}\"\n[key_value_store.\"b:c\"]\ntype = \"redis\"\nurl = \"{0}\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let server = Server::start_with(&app, &["--runtime-config", config.to_str().unwrap()]);
    let set = server.get("/kv?label=b&op=set&key=c:x&value=from-b").await;
    assert_eq!(set.status, 200, "{}", set.body);
    let other = server.get("/kv?label=b:c&op=get&key=x").await;
    assert_eq!((other.status, other.body.as_str()), (200, "none"));
    let keys = server.get("/kv?label=b:c&op=keys").await;
    assert_eq!((keys.status, keys.body.as_str()), (200, ""));
}

#[test]
fn two_labels_on_one_sqlite_file_are_refused() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nkey_value_stores = [\"one\"]\nsqlite_databases = [\"two\"]\n",
    );
    let config = app.path().join("runtime.toml");
    std::fs::write(
        &config,
        "[key_value_store.one]\ntype = \"sqlite\"\npath = \"shared.db\"\n\
         [sqlite_database.two]\ntype = \"sqlite\"\npath = \"./shared.db\"\n",
    )
    .unwrap();
    let error = up_fails(&app, &["--runtime-config", config.to_str().unwrap()]);
    assert!(
        error.contains("key-value store `one` and SQLite database `two` would share data"),
        "{error}"
    );
}

#[tokio::test]
async fn a_log_flood_is_capped_escaped_and_the_server_keeps_serving() {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n[component.a]\nsource = \"ATTACKER\"\n",
    );
    let server = Server::start(&app);
    let reply = server.get("/log-flood?lines=50000").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.expect_log_line("saying the output was dropped", |line| {
        line.contains("the rest of this request's output is dropped")
    });
    assert_eq!(server.get("/").await.body, "attacker ready");
    let log = server.log();
    let flood_lines = log.lines().filter(|l| l.contains("flood ")).count();
    assert!(
        flood_lines > 0 && flood_lines < 1000,
        "{flood_lines} lines logged"
    );
    assert!(
        !log.contains('\r') && !log.contains('\u{1b}'),
        "raw control characters logged"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a guest forged a log line"
    );
}

#[tokio::test]
async fn outbound_urls_with_user_information_are_refused_without_logging_secrets() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nallowed_outbound_hosts = [\"http://127.0.0.1:*\"]\n",
    );
    let server = Server::start(&app);
    let target = format!("http://user:hunter2@{}/?token=s3cret", server.addr);
    let reply = server.get(&format!("/outbound?url={target}")).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    let line = server.expect_log_line("refusing the URL", |l| l.contains("user information"));
    assert!(
        !line.contains("hunter2") && !line.contains("s3cret"),
        "{line}"
    );
}

#[tokio::test]
async fn a_long_statement_leaves_other_requests_on_its_worker_unaffected() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"db\"\n\
         [component.db]\nsource = \"PROBE\"\nsqlite_databases = [\"default\"]\nlimits = { timeout = \"60s\" }\n",
    );
    let server = Server::start_with(&app, &["--workers", "1"]);
    let (status, _) = server
        .post("/sql?db=default", "CREATE TABLE started (x)")
        .await;
    assert_eq!(status, 200);
    // Inside a transaction, the statement has a connection of its own, so the polls below
    // (on the shared connection) are not queued behind it.
    let steps = "INSERT INTO started VALUES (1)\nBEGIN\n\
                 WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let addr = server.addr;
    let long = tokio::spawn(async move {
        common::send(
            addr,
            http::Method::POST,
            "/sql-steps?db=default",
            Bytes::from(steps),
        )
        .await
    });
    // Once the marker row is committed, the endless statement is next on that request.
    let waited = std::time::Instant::now();
    loop {
        let (_, body) = server
            .post("/sql?db=default", "SELECT count(*) FROM started")
            .await;
        if body.contains("Integer(1)") {
            break;
        }
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(30),
            "{body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Answered while the statement still runs (until its 60 s deadline).
    for _ in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(server.get("/").await.body, "Hello from Kite");
        assert!(
            !long.is_finished(),
            "the statement ended early, or hello waited for it"
        );
        eprintln!("hello during a long statement: {:?}", started.elapsed());
    }
    long.abort();
}

/// Runs the attacker's `bomb` route and checks it failed, the host's memory grew by less
/// than 160 MiB (the default `limits.host_memory` is 64 MiB), and others are still served.
async fn bomb_stops_at_the_host_memory_budget(bomb: &str) {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n[component.a]\nsource = \"ATTACKER\"\n",
    );
    let server = Server::start(&app);
    assert_eq!(server.get("/").await.body, "attacker ready");
    let before = common::rss_bytes(server.pid());
    let reply = server.get(bomb).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    let grown = common::rss_bytes(server.pid()).saturating_sub(before);
    assert!(grown < 160 << 20, "the host took {} MiB", grown >> 20);
    assert_eq!(server.get("/").await.body, "attacker ready");
}

#[tokio::test]
async fn a_header_map_bomb_stops_at_the_host_memory_budget() {
    bomb_stops_at_the_host_memory_budget("/fields-bomb?mb=4096").await;
}

#[tokio::test]
async fn a_body_buffer_bomb_stops_at_the_host_memory_budget() {
    bomb_stops_at_the_host_memory_budget("/body-bomb?mb=4096").await;
}

#[tokio::test]
async fn memory_dirtied_by_finished_instances_is_returned_to_the_system() {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nlimits = { memory = \"64MiB\" }\n",
    );
    let server = Server::start_with(&app, &["--workers", "1"]);
    assert_eq!(server.get("/").await.body, "attacker ready");
    let baseline = common::rss_bytes(server.pid());
    let settles_below = |limit: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let rss = common::rss_bytes(server.pid());
            if rss < limit || std::time::Instant::now() > deadline {
                return rss;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    // One request, then idleness: its 48 MiB must not stay resident.
    assert_eq!(server.get("/fill?mb=48").await.status, 200);
    let rss = settles_below(baseline + (24 << 20));
    assert!(
        rss < baseline + (24 << 20),
        "idle at {} MiB, baseline {} MiB",
        rss >> 20,
        baseline >> 20
    );
    // Many in a row: what waits to be returned stays bounded even under traffic.
    for _ in 0..12 {
        assert_eq!(server.get("/fill?mb=56").await.status, 200);
    }
    let after_burst = common::rss_bytes(server.pid());
    assert!(
        after_burst < baseline + (200 << 20),
        "{} MiB after 12 requests, baseline {} MiB",
        after_burst >> 20,
        baseline >> 20
    );
    let rss = settles_below(baseline + (24 << 20));
    assert!(rss < baseline + (24 << 20), "idle at {} MiB", rss >> 20);
}

#[tokio::test]
async fn an_allowed_name_resolving_into_a_blocked_network_is_refused() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nallowed_outbound_hosts = [\"http://localhost:*\", \"http://127.0.0.1:*\"]\n",
    );
    let config = app.path().join("runtime.toml");
    std::fs::write(
        &config,
        "[outbound_networking]\nblock_networks = [\"private\"]\n",
    )
    .unwrap();
    let blocked = Server::start_with(&app, &["--runtime-config", config.to_str().unwrap()]);
    let open = Server::start(&app);
    for target in ["localhost", "127.0.0.1"] {
        let url = format!("http://{target}:{}/", open.addr.port());
        let reply = blocked.get(&format!("/outbound?url={url}")).await;
        assert_eq!(reply.status, 502, "{}", reply.body);
        assert!(
            reply.body.contains("DestinationIpProhibited"),
            "{}",
            reply.body
        );
        // The same request from a server without the rule goes through.
        let reply = open.get(&format!("/outbound?url={url}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let line = blocked.expect_log_line("naming the rule", |l| l.contains("blocked network"));
    assert!(
        line.contains("\"private\"") && line.contains("block_networks"),
        "{line}"
    );
}

#[tokio::test]
async fn an_outbound_connection_bomb_gets_at_most_its_share_of_connections() {
    // A server that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nallowed_outbound_hosts = [\"http://127.0.0.1:*\"]\nlimits = { timeout = \"5s\" }\n",
    );
    let server = Server::start(&app);
    let bomb = server
        .get(&format!(
            "/outbound-bomb?url=http://127.0.0.1:{port}/&n=500"
        ))
        .await;
    // The 32 connections it got never answer, so the request runs into its deadline.
    assert_eq!(bomb.status, 504, "{}", bomb.body);
    let accepted = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        accepted <= 32,
        "{accepted} connections were opened for one instance"
    );
    server.expect_log_line("refusing connections", |l| {
        l.contains("already has 32 outbound connections open")
    });
    let refusals = server.log().matches("outbound connections open").count();
    assert_eq!(refusals, 1, "one log line per request");
    assert_eq!(server.get("/").await.body, "attacker ready");
}

/// Reads from `stream` until the server closes it (returns what it sent), failing the test
/// if that takes longer than `within`.
async fn closed_by_server(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut received))
        .await
        .expect("the server kept a stalled connection open")
        .ok();
    String::from_utf8_lossy(&received).into_owned()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed_while_others_are_served() {
    use tokio::io::AsyncWriteExt;
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n[component.a]\nsource = \"ATTACKER\"\n",
    );
    let server = Server::start_with(&app, &["--header-timeout", "2s"]);
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        if i % 2 == 0 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        stalled.push(stream);
    }
    assert_eq!(server.get("/").await.body, "attacker ready");
    // Well within the old 30 s header timeout: the 2 s one given above applies.
    for stream in &mut stalled {
        closed_by_server(stream, std::time::Duration::from_secs(20)).await;
    }
    assert_eq!(server.get("/").await.body, "attacker ready");
}

/// A server whose component may have one instance, with `--body-timeout 2s`, and a
/// connection that has sent a POST's head (declaring `length` body bytes) and `first`.
async fn one_instance_and_an_open_body(
    length: usize,
    first: &[u8],
) -> (TestApp, Server, tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nlimits = { max_concurrency = 1, timeout = \"120s\" }\n",
    );
    let server = Server::start_with(&app, &["--body-timeout", "2s"]);
    let mut client = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!("POST /consume HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(first).await.unwrap();
    (app, server, client)
}

#[tokio::test]
async fn a_stalled_request_body_frees_its_instance_and_gets_408() {
    let (_app, server, mut dripping) = one_instance_and_an_open_body(1000, b"some bytes").await;
    server.expect_log_line("about the stalled body", |l| {
        l.contains("the request body stalled (no bytes for 2s") && l.contains("answered 408")
    });
    let reply = closed_by_server(&mut dripping, std::time::Duration::from_secs(30)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // The one instance the component may have is free again, long before its deadline.
    assert_eq!(server.get("/").await.status, 200);
}

#[tokio::test]
async fn a_body_dripped_a_byte_at_a_time_frees_its_instance() {
    use tokio::io::AsyncWriteExt;
    let (_app, server, mut dripping) = one_instance_and_an_open_body(100_000, b"").await;
    // A byte every half second never stalls for the 2 s timeout, but brings far less than
    // the least a body must bring in that time.
    let drip = tokio::spawn(async move {
        for _ in 0..240 {
            if dripping.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    server.expect_log_line("about the dripping body", |l| {
        l.contains("the request body stalled") && l.contains("answered 408")
    });
    // The component's one instance is free long before the request's 120 s deadline.
    assert_eq!(server.get("/").await.status, 200);
    drip.abort();
}

#[tokio::test]
async fn a_connection_flood_holds_at_most_the_connection_cap() {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n[component.a]\nsource = \"ATTACKER\"\n",
    );
    let server = Server::start_with(
        &app,
        &[
            "--max-connections",
            "20",
            "--header-timeout",
            "3s",
            "--workers",
            "2",
        ],
    );
    assert_eq!(server.get("/").await.body, "attacker ready");
    let baseline = open_descriptors(server.pid());
    let mut flood = Vec::new();
    for _ in 0..80 {
        flood.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // Give the server every chance to accept what it would.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let held = open_descriptors(server.pid()).saturating_sub(baseline);
    assert!(held <= 24, "{held} connections accepted past a cap of 20");
    // Idle connections are closed after the header timeout, so a real client gets in.
    let reply = tokio::time::timeout(std::time::Duration::from_secs(60), server.get("/"))
        .await
        .expect("served once the idle connections timed out");
    assert_eq!(reply.body, "attacker ready");
    drop(flood);
}

#[tokio::test]
async fn a_client_that_never_reads_its_response_loses_its_connection() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = \"PROBE\"\nlimits = { max_request_body = \"64MiB\", timeout = \"120s\" }\n",
    );
    let server = Server::start_with(&app, &["--max-connections", "1", "--body-timeout", "2s"]);
    // Echoed back, 32 MiB fill every buffer between the server and a client that reads none.
    let mut greedy = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let size = 32 << 20;
    let writer = tokio::spawn(async move {
        let head = format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        let _ = greedy.write_all(head.as_bytes()).await;
        let _ = greedy.write_all(&vec![b'e'; size]).await;
        greedy
    });
    // The one connection place comes back once the server gives up writing to it.
    let reply = tokio::time::timeout(std::time::Duration::from_secs(60), server.get("/"))
        .await
        .expect("a client that never reads held the only connection place");
    assert_eq!(reply.body, "Hello from Kite");
    drop(writer);
}

#[tokio::test]
async fn a_poll_list_longer_than_the_resource_limit_is_refused_before_it_is_lifted() {
    let app = attacker_app(
        "[[route]]\npath = \"/...\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"ATTACKER\"\nlimits = { timeout = \"10s\" }\n",
    );
    let server = Server::start(&app);
    assert_eq!(
        server.get("/poll-bomb?n=2").await.status,
        504,
        "a short list just waits"
    );
    let before = common::rss_bytes(server.pid());
    // Within the bytes one host call may carry, yet without the check the host would lift
    // a million handles and wait on them.
    let bomb = server.get("/poll-bomb?n=1000000").await;
    assert_eq!(bomb.status, 500, "{}", bomb.body);
    server.expect_log_line("naming the limit", |l| l.contains("1000000 pollables"));
    let grown = common::rss_bytes(server.pid()).saturating_sub(before);
    assert!(grown < 64 << 20, "the host took {} MiB", grown >> 20);
}
