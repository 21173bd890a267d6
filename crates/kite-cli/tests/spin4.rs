//! Spin 4 apps (spin-sdk 7, WASI 0.3) from a spin.toml, unchanged: every `spin:*@3`
//! interface and `spin:postgres@4.2.0` against real SQLite, Redis, MQTT, MariaDB and
//! PostgreSQL servers, within the component's grants.

mod common;
use common::{guest, repo_root, wasm_target_dir, MariaDbServer, PgServer, Server, TestCerts};

/// A Spin 4 app (spin.toml) serving the spin-sdk 7 guest with `extra` lines added to its
/// component table.
fn spin4_app(extra: &str) -> tempfile::TempDir {
    common::spin_app(&guest("spin4"), "hello from spin.toml", extra)
}

/// The spin-sdk 7 guest, allowed to reach the PostgreSQL server `db`.
fn pg_app(db: &PgServer) -> tempfile::TempDir {
    spin4_app(&format!(
        "allowed_outbound_hosts = [\"postgres://127.0.0.1:{}\"]",
        db.port
    ))
}

/// `route` given `address` padded past 8 KiB answers with the bound, not a connection.
async fn refuses_a_long_address(server: &Server, route: &str, address: &str) {
    let long = format!("{address}{}", "a".repeat(9000));
    let refused = server.get(&format!("{route}?address={long}")).await;
    assert!(
        refused
            .body
            .contains("the address is longer than 8192 bytes"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_spin_4_app_uses_key_value_sqlite_and_variables_through_spin_v3_interfaces() {
    let dir = spin4_app("");
    let server = Server::start_at(dir.path(), &[]);
    let hello = server.get("/hello").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, "Hello from Spin 4\n")
    );

    let variable = server.get("/variable?name=greeting").await;
    assert_eq!(variable.body, "greeting=hello from spin.toml\n");
    let undefined = server.get("/variable?name=missing").await;
    assert!(undefined.body.contains("Undefined"), "{undefined:?}");
    let invalid = server.get("/variable?name=Not-Valid").await;
    assert!(invalid.body.contains("InvalidName"), "{invalid:?}");

    let first = server.get("/kv?key=a&value=1").await;
    assert_eq!(
        first.body, "get=Ok(Some(\"1\")) exists=Ok(true) keys=a\n",
        "{first:?}"
    );
    let second = server.get("/kv?key=b&value=2").await;
    assert_eq!(
        second.body,
        "get=Ok(Some(\"2\")) exists=Ok(true) keys=a,b\n"
    );
    let unknown = server.get("/kv?store=other&key=c&value=3").await;
    assert_eq!(unknown.body, "open: Error::NoSuchStore\n");

    // spin:sqlite@3.1.0: rows as a stream; the insert's row id and changes are this
    // connection's own.
    let first = server.get("/sqlite?note=one").await;
    assert_eq!(first.body, "rowid=1 changes=1 notes=1:one\n", "{first:?}");
    let second = server.get("/sqlite?note=two").await;
    assert_eq!(second.body, "rowid=2 changes=1 notes=1:one,2:two\n");
}

#[tokio::test]
async fn a_spin_4_app_uses_redis_through_spin_redis_3_within_its_rules() {
    let redis = common::RedisServer::start();
    let dir = spin4_app(&format!("allowed_outbound_hosts = [\"{}\"]", redis.url()));
    let server = Server::start_at(dir.path(), &[]);
    let url = redis.url();
    for visits in [1, 2] {
        let reply = server.get(&format!("/redis?address={url}")).await;
        assert_eq!(
            reply.body,
            format!("visits=Ok({visits}) greeting=Ok(Some(\"hello\")) config_refused=true\n"),
            "{reply:?}"
        );
    }
    let other = format!("redis://127.0.0.1:{}", common::free_port());
    let denied = server.get(&format!("/redis?address={other}")).await;
    assert_eq!(denied.body, "open: Error::InvalidAddress\n");
    server.wait_for_log("allowed_outbound_hosts");
    // Refused in a loop, a request logs its first 16 refusals only.
    let flood = server
        .get(&format!("/redis-denied?address={other}&n=500"))
        .await;
    assert_eq!(flood.body, "refused=500\n");
    server.wait_for_log("further refusals of this request are not logged");
    let logged = server
        .log()
        .lines()
        .filter(|line| line.contains("denied Redis connection to redis://"))
        .count();
    assert_eq!(
        logged,
        1 + 16,
        "one refusal of the first request, 16 of the second:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn a_spin_4_app_publishes_through_spin_mqtt_3_within_its_rules() {
    let broker = common::MqttBroker::start();
    let dir = spin4_app(&format!(
        "allowed_outbound_hosts = [\"mqtt://127.0.0.1:{}\"]",
        broker.port
    ));
    let server = Server::start_at(dir.path(), &[]);
    let address = format!("mqtt://127.0.0.1:{}?client_id=spin4", broker.port);
    let reply = server
        .get(&format!(
            "/mqtt?address={address}&topic=kite/spin4&value=hello"
        ))
        .await;
    assert_eq!(reply.body, "published\n", "{reply:?}");
    assert_eq!(broker.next_message(), "kite/spin4 hello");
    let other = format!("mqtt://127.0.0.1:{}", common::free_port());
    let denied = server
        .get(&format!("/mqtt?address={other}&topic=t&value=v"))
        .await;
    assert!(
        denied.body.starts_with("open: Error::ConnectionFailed"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn a_spin_4_app_uses_mysql_through_spin_mysql_3_within_its_rules() {
    let mysql = MariaDbServer::start();
    let address = mysql.database("spin4");
    let dir = spin4_app(&format!(
        "allowed_outbound_hosts = [\"mysql://127.0.0.1:{}\"]",
        mysql.port
    ));
    let server = Server::start_at(dir.path(), &[]);
    let first = server.get(&format!("/mysql?address={address}")).await;
    assert!(
        first
            .body
            .starts_with("pets=1:rex,2:tom missing=MysqlError(Error::QueryFailed("),
        "{first:?}"
    );
    assert!(first.body.contains("missing"), "{first:?}");
    let second = server.get(&format!("/mysql?address={address}")).await;
    assert!(
        second.body.starts_with("pets=1:rex,2:tom,3:rex,4:tom "),
        "{second:?}"
    );
    let other = MariaDbServer::start();
    let denied = server
        .get(&format!("/mysql?address={}", other.database("spin4")))
        .await;
    assert!(
        denied
            .body
            .starts_with("open: MysqlError(Error::ConnectionFailed(")
            && denied.body.contains("is not permitted"),
        "{denied:?}"
    );
    server.wait_for_log(&format!(
        "add \"mysql://127.0.0.1:{}\" to `allowed_outbound_hosts`",
        other.port
    ));
    refuses_a_long_address(&server, "/mysql", &address).await;
}

#[tokio::test]
async fn a_spin_4_app_uses_postgres_through_spin_postgres_4_2_within_its_rules() {
    let db = PgServer::start();
    let dir = pg_app(&db);
    let server = Server::start_at(dir.path(), &[]);
    let reply = server.get(&format!("/pg?address={}", db.url())).await;
    assert_eq!(
        reply.body, "inserted=2 pets=1:rex:2020-01-02,2:tom:- missing=42P01\n",
        "{reply:?}"
    );
    let again = server.get(&format!("/pg?address={}", db.url())).await;
    assert!(
        again
            .body
            .starts_with("inserted=2 pets=1:rex:2020-01-02,2:tom:-,3:rex:2020-01-02,4:tom:- "),
        "{again:?}"
    );
    let other = PgServer::start();
    let denied = server.get(&format!("/pg?address={}", other.url())).await;
    assert!(
        denied.body.contains("ConnectionFailed") && denied.body.contains("is not permitted"),
        "{denied:?}"
    );
    refuses_a_long_address(&server, "/pg", &db.url()).await;
}

#[tokio::test]
async fn a_root_certificate_a_spin_4_guest_names_is_trusted_for_its_own_connection_only() {
    let certs = TestCerts::new();
    let db = PgServer::start_tls(&certs);
    let dir = spin4_app(&format!(
        "allowed_outbound_hosts = [\"postgres://localhost:{}\"]",
        db.port
    ));
    let server = Server::start_at(dir.path(), &[]);
    let path = format!(
        "/pg-tls?address=postgres://postgres@localhost:{}/postgres?sslmode=require",
        db.port
    );
    // Nobody trusts the server's certificate authority: refused.
    let untrusted = server.get(&path).await;
    assert!(
        untrusted.body.starts_with("open: ")
            && untrusted.body.to_lowercase().contains("certificate"),
        "{untrusted:?}"
    );
    // The guest names it through the connection builder: trusted, for that connection.
    let ca = std::fs::read_to_string(certs.path("ca.pem")).unwrap();
    let (_, trusted) = server.post(&path, &ca).await;
    assert_eq!(trusted, "tls=Some(true)\n");
    let after = server.get(&path).await;
    assert!(after.body.starts_with("open: "), "{after:?}");
    // Text that is not a certificate is the guest's error, not the host's.
    let (_, garbage) = server.post(&path, "not a certificate").await;
    assert!(garbage.contains("invalid root certificate"), "{garbage}");
}

/// The number after `kept=` in a hoarding route's answer.
fn kept(body: &str) -> usize {
    body.strip_prefix("kept=")
        .and_then(|rest| rest.split([' ', '\n']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {body:?}"))
}

#[tokio::test]
async fn results_a_spin_4_guest_leaves_unread_stay_within_its_host_memory() {
    let db = PgServer::start();
    let dir = pg_app(&db);
    let server = Server::start_at(dir.path(), &[]);
    // Each query's row is 1 MiB, left unread in its stream; the instance's host memory is
    // 64 MiB by default.
    for path in [
        format!("/pg-hoard?address={}&n=200", db.url()),
        "/sqlite-hoard?n=200".to_string(),
    ] {
        let reply = server.get(&path).await;
        assert!(
            reply.body.contains("refused=") && reply.body.contains("host memory limit"),
            "{path}: {reply:?}"
        );
        let kept = kept(&reply.body);
        assert!((32..64).contains(&kept), "{path}: {reply:?}");
    }
    // What one request held is given back with its instance.
    let again = server
        .get(&format!("/pg-hoard?address={}&n=16", db.url()))
        .await;
    assert_eq!(again.body, "kept=16\n");
}

/// Copies the app Spin's template `name` made (tests/guests/spin-templates/<name>) to a
/// temporary directory, runs its build command with `kite build`, and serves it. A
/// `keep` directory the build writes is kept in the guests' target directory, so that a
/// second run reuses what the first built.
fn serve_template(name: &str, keep: Option<&str>) -> (tempfile::TempDir, Server) {
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join(name);
    common::copy_dir(
        &repo_root().join("tests/guests/spin-templates").join(name),
        &app,
    );
    if let Some(keep) = keep {
        let kept = wasm_target_dir().join(format!("spin-template-{name}"));
        std::fs::create_dir_all(&kept).unwrap();
        std::os::unix::fs::symlink(&kept, app.join(keep)).unwrap();
    }
    let server = common::build_and_serve(&app, &work.path().join("cache"));
    (work, server)
}

#[tokio::test]
async fn an_app_made_from_spin_s_http_rust_template_builds_and_serves_unchanged() {
    // Spin 4's `http-rust` template (spin-sdk 6: a handler for the WASI 0.3 release
    // candidate), built by its own build command.
    let (_work, server) = serve_template("http-rust", Some("target"));
    let reply = server.get("/anything").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello World!"));
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    // The template prints the `spin-full-url` header Spin sets on every request.
    server.wait_for_log(&format!(
        "Handling request to Some(\"http://{}/anything\")",
        server.addr
    ));
}

#[tokio::test]
async fn an_app_made_from_spin_s_http_js_template_builds_and_serves_unchanged() {
    // The JavaScript SDK's `http-js` template: `npm install`, then esbuild and
    // componentize-js through Spin's build tools.
    let (_work, server) = serve_template("http-js", None);
    let reply = server.get("/").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello, Spin!"));
    assert_eq!(reply.header("content-type"), Some("text/plain"));
}

#[tokio::test]
async fn statements_a_spin_4_guest_cancels_stay_counted_until_they_end() {
    let db = PgServer::start();
    let dir = pg_app(&db);
    let server = Server::start_at(dir.path(), &[]);
    // A cancelled call's statement still runs (here: waits behind a minute's sleep), so it
    // stays counted: 20,000 of them are more than a request's 64 MiB of host memory.
    let many = server
        .get(&format!("/pg-cancel?address={}&n=20000", db.url()))
        .await;
    assert!(
        many.body.starts_with("after: ") && many.body.contains("host memory limit"),
        "{many:?}"
    );
    let few = server
        .get(&format!("/pg-cancel?address={}&n=10", db.url()))
        .await;
    assert_eq!(few.body, "after: ran\n", "{few:?}");
}
