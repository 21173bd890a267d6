//! A guest written with the Spin Rust SDK (spin-sdk 5.2), served unchanged from a spin.toml:
//! every interface the SDK binds (Redis, PostgreSQL 2/3/4, MySQL, MQTT, LLM, key-value,
//! SQLite, variables) against real servers, and the allowed-hosts rules for each client.

mod common;
use common::{MariaDbServer, MqttBroker, PgServer, RedisServer, Server, TestApp};

/// `text` percent-encoded for a query string.
fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// An app whose one component is the SDK guest, on every path, with `rules` as its
/// `allowed_outbound_hosts`.
fn app(rules: &str) -> TestApp {
    TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"sdk\"\n\
         [variables]\ngreeting = {{ default = \"hej\" }}\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"sdk\"\n\
         [component.sdk]\nsource = \"SPIN_SDK_GUEST\"\nallowed_outbound_hosts = [{rules}]\n\
         key_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\n\
         [component.sdk.variables]\ngreeting = \"{{{{ greeting }}}}\"\n"
    ))
}

fn assert_lines(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(text.lines().any(|l| l == *line), "{line:?} in\n{text}");
    }
}

#[tokio::test]
async fn redis_through_the_sdk() {
    let redis = RedisServer::start();
    let server = Server::start(&app(&format!("\"redis://127.0.0.1:{}\"", redis.port)));
    let reply = server
        .get(&format!("/redis?address={}", enc(&redis.url())))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "get Some([118])",
            "get missing None",
            "incr 1",
            "sadd 2",
            "smembers [\"a\", \"b\"]",
            "srem 1",
            "del 2",
            "execute APPEND [RedisResult::Int64(2)]",
            "execute SET [RedisResult::Status(\"OK\")]",
            "execute LRANGE []",
            "execute GET missing [RedisResult::Nil]",
            "published",
        ],
    );
}

#[tokio::test]
async fn postgres_three_versions_through_the_sdk() {
    let db = PgServer::start();
    let server = Server::start(&app(&format!("\"postgres://127.0.0.1:{}\"", db.port)));
    let address = enc(&db.url());

    let reply = server.get(&format!("/pg2?address={address}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "inserted 1",
            "column i2 DbDataType::Int16",
            "column by DbDataType::Binary",
            "column d DbDataType::Other",
            "decoded true -2 3 -4 1.5 2.25 \"héllo\" [0, 1, 255]",
            "date DbValue::Unsupported",
        ],
    );
    assert!(
        reply
            .body
            .contains("unsigned Err(Error::ValueConversionFailed("),
        "{}",
        reply.body
    );

    let reply = server.get(&format!("/pg3?address={address}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "inserted 1",
            "decoded 2024-02-29 13:14:15.500 2024-02-29 13:14:15.500 None",
        ],
    );

    let reply = server.get(&format!("/pg4?address={address}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "inserted 1",
            "decoded Some(\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\") Some(\"{\\\"a\\\":[1,2]}\") \
             Some(\"-12.5\") Some([Some(1), Some(-2)]) Some([Some(\"x\"), Some(\"y z\")]) \
             Some((1500000, 2, 3))",
        ],
    );
}

#[tokio::test]
async fn mysql_every_type_through_the_sdk() {
    let db = MariaDbServer::start();
    let server = Server::start(&app(&format!("\"mysql://127.0.0.1:{}\"", db.port)));
    let reply = server
        .get(&format!("/mysql?address={}", enc(&db.database("shop"))))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "column ti DbDataType::Int8",
            "column tu DbDataType::Uint8",
            "column si DbDataType::Int16",
            "column su DbDataType::Uint16",
            "column mi DbDataType::Int32",
            "column ii DbDataType::Int32",
            "column iu DbDataType::Uint32",
            "column bi DbDataType::Int64",
            "column bu DbDataType::Uint64",
            "column f DbDataType::Floating32",
            "column d DbDataType::Floating64",
            "column vc DbDataType::Str",
            "column tx DbDataType::Str",
            "column vb DbDataType::Binary",
            "column bl DbDataType::Binary",
            "values [DbValue::Int8(-8), DbValue::Uint8(200), DbValue::Int16(-16), DbValue::Uint16(60000), DbValue::Int32(-8388608), \
             DbValue::Int32(-2147483648), DbValue::Uint32(4000000000), DbValue::Int64(-9223372036854775808), \
             DbValue::Uint64(18446744073709551615), DbValue::Floating32(1.5), DbValue::Floating64(-2.25), \
             DbValue::Str(\"héllo\"), DbValue::Str(\"long text\"), DbValue::Binary([0, 1, 255]), DbValue::Binary([9, 9, 9]), DbValue::DbNull]",
            "decoded -8 18446744073709551615 1.5 \"héllo\" [0, 1, 255] None",
            "cast [[DbValue::Str(\"2024-02-29 13:14:15\")]]",
        ],
    );
    assert!(
        reply
            .body
            .contains("datetime Err(Error::ValueConversionFailed(\"cannot convert the value in column \\\"dt\\\""),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn mysql_refuses_what_reaches_past_the_grant() {
    let db = MariaDbServer::start();
    let server = Server::start(&app(&format!("\"mysql://127.0.0.1:{}\"", db.port)));
    let address = db.database("attack");
    let query = |address: String, sql: &'static str| {
        let server = &server;
        async move {
            server
                .post(&format!("/mysql-query?address={}", enc(&address)), sql)
                .await
        }
    };

    let (status, text) = query(address.clone(), "SELEKT 1").await;
    assert_eq!(status, 500);
    assert!(text.starts_with("Error::QueryFailed("), "{text}");

    // The server may ask the client for one of the host's files; Kite has nothing to give.
    let (status, text) = query(
        address.clone(),
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE nowhere",
    )
    .await;
    assert_eq!(status, 500, "{text}");
    let (_, created) = query(
        address.clone(),
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'nowhere'",
    )
    .await;
    assert!(created.contains("DbValue::Int64(0)"), "{created}");
    let (status, text) = query(address.clone(), "CREATE TABLE stolen (line TEXT)").await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = query(
        address.clone(),
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE stolen",
    )
    .await;
    assert_eq!(status, 500, "{text}");
    let (_, count) = query(address.clone(), "SELECT COUNT(*) FROM stolen").await;
    assert_eq!(count, "[[DbValue::Int64(0)]]\n");

    // Every connection went over TCP to the checked address; none was switched to the
    // server's Unix socket (as the client does by default for a server on this machine).
    let log = db.general_log();
    assert!(log.contains("using TCP/IP"), "{log}");
    assert!(!log.contains("using Socket"), "{log}");

    // Address parameters that would reach past the checked host and port.
    for parameter in ["socket=/run/mysqld/mysqld.sock", "prefer_socket=true"] {
        let (status, text) = query(format!("{address}?{parameter}"), "SELECT 1").await;
        assert_eq!(status, 500);
        assert!(text.contains("is not supported"), "{text}");
    }

    // A server the grant does not name: refused before connecting, with the rule to add.
    let (status, text) = query("mysql://kite@localhost:1/attack".to_string(), "SELECT 1").await;
    assert_eq!(status, 500);
    assert!(
        text.contains("address mysql://localhost:1 is not permitted"),
        "{text}"
    );
    server.wait_for_log("add \"mysql://localhost:1\" to `allowed_outbound_hosts`");
}

/// A result too large to hold fails the query; the connection the guest then drops is
/// closed, not left reading the rest of the result (a terabyte here).
#[tokio::test]
async fn an_endless_result_is_cut_off_and_its_connection_closed() {
    let db = MariaDbServer::start();
    let server = Server::start(&app(&format!("\"mysql://127.0.0.1:{}\"", db.port)));
    let address = db.database("endless");
    let (status, text) = server
        .post(
            &format!("/mysql-query?address={}", enc(&address)),
            "SELECT seq, REPEAT('x', 1000) FROM seq_1_to_1000000000",
        )
        .await;
    assert_eq!(status, 500);
    assert!(text.contains("larger than"), "{text}");
    let connections = || {
        db.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = 'endless'")
            .trim()
            .to_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while connections() != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the guest's connection was never closed: {}",
            db.sql("SHOW PROCESSLIST")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[tokio::test]
async fn mqtt_through_the_sdk() {
    let broker = MqttBroker::start();
    let server = Server::start(&app(&format!("\"mqtt://127.0.0.1:{}\"", broker.port)));
    let address = enc(&format!("mqtt://127.0.0.1:{}?client_id=sdk", broker.port));
    for qos in ["0", "1", "2"] {
        let (status, text) = server
            .post(
                &format!("/mqtt?address={address}&topic=kite/sdk{qos}&qos={qos}"),
                &format!("from-sdk-{qos}"),
            )
            .await;
        assert_eq!((status, text.as_str()), (200, "published"), "qos {qos}");
        assert_eq!(
            broker.next_message(),
            format!("kite/sdk{qos} from-sdk-{qos}")
        );
    }
}

#[tokio::test]
async fn llm_key_value_sqlite_and_variables_through_the_sdk() {
    let app = app("");
    let server = Server::start(&app);

    let reply = server.get("/llm").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "infer Err(Error::ModelNotSupported)",
            "embeddings Err(Error::ModelNotSupported)",
        ],
    );

    let reply = server.get("/kv").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "get Some([118, 97, 108, 117, 101])",
            "exists true",
            "json Some(\"{\\\"n\\\":1}\")",
            "keys [\"sdk-json\", \"sdk-key\"]",
            "after delete false",
        ],
    );
    // A label the app does not define is named as such (Spin answers access-denied).
    let reply = server.get("/kv?store=elsewhere").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, "Error::NoSuchStore")
    );
    // Kept where Spin keeps it, in Spin's layout.
    assert!(app.path().join(".spin/sqlite_key_value.db").is_file());

    let reply = server.get("/sqlite").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_lines(
        &reply.body,
        &[
            "columns [\"id\", \"body\", \"data\", \"score\", \"absent\"]",
            "row Some(1) Some(\"héllo\") Some([0, 255]) Some(0.5)",
        ],
    );
    let reply = server.get("/sqlite?database=elsewhere").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, "Error::NoSuchDatabase")
    );

    let reply = server.get("/variable?name=greeting").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "hej"));
    let reply = server.get("/variable?name=secret").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.starts_with("Error::Undefined("),
        "{}",
        reply.body
    );
}

/// Every client, through one rule form per component: a CIDR block with a port range, a
/// range that ends (exclusively) at the server's port, `{{ variable }}` templates, any
/// scheme on the host, and no rule at all.
#[tokio::test]
async fn every_client_obeys_cidr_port_ranges_and_templates() {
    let redis = RedisServer::start();
    let pg = PgServer::start();
    let mysql = MariaDbServer::start();
    let mqtt = MqttBroker::start();
    // (the kind the guest opens, the rule scheme, the server's port, the address)
    let services = [
        ("redis", "redis", redis.port, redis.url()),
        ("pg2", "postgres", pg.port, pg.url()),
        ("pg3", "postgres", pg.port, pg.url()),
        ("pg4", "postgres", pg.port, pg.url()),
        ("mysql", "mysql", mysql.port, mysql.database("rules")),
        (
            "mqtt",
            "mqtt",
            mqtt.port,
            format!("mqtt://127.0.0.1:{}?client_id=rules", mqtt.port),
        ),
    ];
    let rules = |rule: &dyn Fn(&str, u16) -> String| {
        services
            .iter()
            .map(|(_, scheme, port, _)| format!("{:?}", rule(scheme, *port)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let components = [
        (
            "cidr",
            rules(&|s, p| format!("{s}://127.0.0.0/8:{p}..{}", p + 1)),
        ),
        (
            "before",
            rules(&|s, p| format!("{s}://127.0.0.1:{}..{p}", p - 1)),
        ),
        (
            "template",
            rules(&|s, _| format!("{s}://{{{{ host }}}}:{{{{ {s}_port }}}}")),
        ),
        ("any", "\"*://127.0.0.1:*\"".to_string()),
        ("none", String::new()),
    ];
    let mut manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"rules\"\n\
         [variables]\nhost = {{ default = \"127.0.0.1\" }}\n\
         redis_port = {{ default = \"{}\" }}\npostgres_port = {{ default = \"{}\" }}\n\
         mysql_port = {{ default = \"{}\" }}\nmqtt_port = {{ default = \"{}\" }}\n",
        redis.port, pg.port, mysql.port, mqtt.port
    );
    for (name, rules) in &components {
        manifest += &format!(
            "[[trigger.http]]\nroute = \"/{name}/...\"\ncomponent = \"{name}\"\n\
             [component.{name}]\nsource = \"SPIN_SDK_GUEST\"\nallowed_outbound_hosts = [{rules}]\n"
        );
    }
    let app = TestApp::spin(&manifest);
    let server = Server::start(&app);
    for (component, allowed) in [
        ("cidr", true),
        ("before", false),
        ("template", true),
        ("any", true),
        ("none", false),
    ] {
        for (kind, scheme, port, address) in &services {
            let reply = server
                .get(&format!(
                    "/{component}/open?kind={kind}&address={}",
                    enc(address)
                ))
                .await;
            let what = format!("{kind} from {component}: {} {}", reply.status, reply.body);
            if allowed {
                assert_eq!((reply.status, reply.body.as_str()), (200, "open"), "{what}");
            } else {
                assert_eq!(reply.status, 500, "{what}");
                assert!(
                    reply.body.contains("not permitted") || reply.body == "Error::InvalidAddress",
                    "{what}"
                );
                server.wait_for_log(&format!(
                    "add \"{scheme}://127.0.0.1:{port}\" to `allowed_outbound_hosts`"
                ));
            }
        }
    }
}
