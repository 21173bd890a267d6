//! TLS for outbound connections: PostgreSQL (unless `sslmode=disable`), MySQL (when
//! `ssl-mode` asks), `rediss://` and HTTPS, against real servers with certificates from a
//! throwaway CA. Only roots the component is given (`[[client_tls]]`) are trusted besides
//! the built-in ones, and a client certificate is shown where one is configured.

mod common;
use common::{MariaDbServer, PgServer, RedisServer, Server, TestApp, TestCerts};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A Spin app whose component `sdk` (the Spin SDK guest) may reach every port on
/// localhost, served with a runtime configuration holding `runtime_config`.
fn start(runtime_config: &str) -> (TestApp, Server) {
    let app = TestApp::spin(
        "spin_manifest_version = 2\n[application]\nname = \"tls\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"sdk\"\n\
         [component.sdk]\nsource = \"SPIN_SDK_GUEST\"\n\
         allowed_outbound_hosts = [\"*://localhost:*\"]\n",
    );
    let config = app.path().join("runtime-config.toml");
    std::fs::write(&config, runtime_config).unwrap();
    let server = Server::start_with(&app, &["--runtime-config-file", config.to_str().unwrap()]);
    (app, server)
}

/// `[[client_tls]]` trusting the test CA for localhost, with `extra` settings.
fn trusting(certs: &TestCerts, extra: &str) -> String {
    format!(
        "[[client_tls]]\ncomponent_ids = [\"sdk\"]\nhosts = [\"localhost\"]\nca_roots_file = {:?}\n{extra}",
        certs.path("ca.pem")
    )
}

async fn pg_query(server: &Server, address: &str, sql: &str) -> (u16, String) {
    server
        .post(&format!("/pg-query?address={}", enc(address)), sql)
        .await
}

async fn mysql_query(server: &Server, address: &str, sql: &str) -> (u16, String) {
    server
        .post(&format!("/mysql-query?address={}", enc(address)), sql)
        .await
}

const PG_SSL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
const MYSQL_SSL: &str =
    "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'";

#[tokio::test]
async fn databases_speak_tls_to_servers_the_component_trusts() {
    let certs = TestCerts::new();
    let pg = PgServer::start_tls(&certs);
    let mysql = MariaDbServer::start_tls(&certs);
    let redis = RedisServer::start_tls(&certs);
    mysql.sql("CREATE DATABASE tls");
    let (_app, server) = start(&trusting(&certs, ""));

    // PostgreSQL: TLS unless disabled, as libpq and Spin do.
    let pg_url = format!("postgres://postgres@localhost:{}/postgres", pg.port);
    for (mode, expected) in [
        ("", "[[DbValue::Boolean(true)]]"),
        ("?sslmode=require", "[[DbValue::Boolean(true)]]"),
        ("?sslmode=disable", "[[DbValue::Boolean(false)]]"),
    ] {
        let (status, text) = pg_query(&server, &format!("{pg_url}{mode}"), PG_SSL).await;
        assert_eq!((status, text.trim()), (200, expected), "sslmode {mode:?}");
    }

    // MySQL: TLS when `ssl-mode` asks for it, plain text otherwise.
    let mysql_url = format!("mysql://kite@localhost:{}/tls", mysql.port);
    let (status, text) = mysql_query(
        &server,
        &format!("{mysql_url}?ssl-mode=REQUIRED"),
        MYSQL_SSL,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Str(\"TLSv1."), "{text}");
    let (status, text) = mysql_query(&server, &mysql_url, MYSQL_SSL).await;
    assert_eq!((status, text.trim()), (200, "[[DbValue::Str(\"\")]]"));

    // Redis: `rediss://`.
    let reply = server
        .get(&format!(
            "/redis?address={}",
            enc(&format!("rediss://localhost:{}", redis.port))
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("published"), "{}", reply.body);
}

#[tokio::test]
async fn servers_with_certificates_nobody_trusts_are_refused() {
    let certs = TestCerts::new();
    let pg = PgServer::start_tls(&certs);
    let mysql = MariaDbServer::start_tls(&certs);
    let redis = RedisServer::start_tls(&certs);
    // An entry for another component changes nothing for this one.
    let (_app, server) = start(&format!(
        "[[client_tls]]\ncomponent_ids = [\"other\"]\nhosts = [\"localhost\"]\nca_roots_file = {:?}\n",
        certs.path("ca.pem")
    ));

    let (status, text) = pg_query(
        &server,
        &format!("postgres://postgres@localhost:{}/postgres", pg.port),
        PG_SSL,
    )
    .await;
    assert_eq!(status, 500);
    assert!(text.contains("ConnectionFailed"), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    let (status, text) = mysql_query(
        &server,
        &format!(
            "mysql://kite@localhost:{}/mysql?ssl-mode=REQUIRED",
            mysql.port
        ),
        MYSQL_SSL,
    )
    .await;
    assert_eq!(status, 500);
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    let reply = server
        .get(&format!(
            "/open?kind=redis&address={}",
            enc(&format!("rediss://localhost:{}", redis.port))
        ))
        .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.to_lowercase().contains("certificate"),
        "{}",
        reply.body
    );
}

/// `openssl s_server -www` on a free port: HTTPS with the test server certificate,
/// demanding a client certificate the test CA signed.
struct HttpsServer {
    child: Child,
    port: u16,
}

impl HttpsServer {
    fn start(certs: &TestCerts) -> HttpsServer {
        let port = common::free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
            .arg("-cert")
            .arg(certs.path("server.pem"))
            .arg("-key")
            .arg(certs.path("server.key"))
            .arg("-CAfile")
            .arg(certs.path("ca.pem"))
            .args(["-Verify", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting `openssl s_server` (install it with `apt-get install -y openssl`)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        HttpsServer { child, port }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client certificate `[[client_tls]]` names is shown to servers that ask for one
/// (here over HTTPS, through the probe guest's outbound request).
#[tokio::test]
async fn client_certificates_are_shown_where_configured() {
    let certs = TestCerts::new();
    let https = HttpsServer::start(&certs);
    let probe_app = |runtime_config: &str| {
        let app = TestApp::probe(
            "[[route]]\npath = \"/...\"\ncomponent = \"c\"\n\
             [component.c]\nsource = \"PROBE\"\nallowed_outbound_hosts = [\"https://localhost:*\"]\n",
        );
        let config = app.path().join("runtime-config.toml");
        std::fs::write(&config, runtime_config.replace("\"sdk\"", "\"c\"")).unwrap();
        let server = Server::start_with(&app, &["--runtime-config-file", config.to_str().unwrap()]);
        (app, server)
    };
    let url = format!("https://localhost:{}/", https.port);

    let with_identity = trusting(
        &certs,
        &format!(
            "client_cert_file = {:?}\nclient_private_key_file = {:?}\n",
            certs.path("client.pem"),
            certs.path("client.key")
        ),
    );
    let (_app, server) = probe_app(&with_identity);
    let reply = server.get(&format!("/outbound?url={url}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("kite-client"), "{}", reply.body);
    drop(server);

    // Trusted, but without a certificate to show: the server ends the handshake.
    let (_app, server) = probe_app(&trusting(&certs, ""));
    let reply = server.get(&format!("/outbound?url={url}")).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
}

#[test]
fn bad_tls_settings_fail_the_start_naming_the_entry() {
    let certs = TestCerts::new();
    let app = TestApp::spin(
        "spin_manifest_version = 2\n[application]\nname = \"tls\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"sdk\"\n\
         [component.sdk]\nsource = \"SPIN_SDK_GUEST\"\n",
    );
    let config = app.path().join("runtime-config.toml");
    for (settings, expected) in [
        (
            "ca_roots_file = \"missing.pem\"\n".to_string(),
            "cannot read the roots file",
        ),
        (
            format!("ca_roots_file = {:?}\n", certs.path("server.key")),
            "holds no PEM certificate",
        ),
        (
            format!(
                "ca_roots_file = {:?}\nclient_cert_file = {:?}\nclient_private_key_file = {:?}\n",
                certs.path("ca.pem"),
                certs.path("client.pem"),
                certs.path("server.key")
            ),
            "does not match its private key",
        ),
    ] {
        std::fs::write(
            &config,
            format!(
                "[[client_tls]]\ncomponent_ids = [\"sdk\"]\nhosts = [\"localhost\"]\n{settings}"
            ),
        )
        .unwrap();
        let stderr = common::up_fails(&app, &["--runtime-config-file", config.to_str().unwrap()]);
        assert!(stderr.contains("client_tls[0]"), "{stderr}");
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
}
