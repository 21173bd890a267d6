//! Outbound PostgreSQL (`fermyon:spin/postgres@2.0.0`, `spin:postgres/postgres@3.0.0` and
//! `@4.0.0`) against a real PostgreSQL: every value type both ways, the three versions'
//! narrowing, errors, and the allowed-hosts check.

mod common;
use common::{PgServer, Server, TestApp};

fn app(rules: &str) -> TestApp {
    TestApp::spin(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"pg\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
         [component.probe]\nsource = \"PROBE\"\nallowed_outbound_hosts = [{rules}]\n"
    ))
}

async fn pg(server: &Server, address: &str, version: u8, op: &str, sql: &str) -> (u16, String) {
    server
        .post(&format!("/pg?address={address}&v={version}&op={op}"), sql)
        .await
}

const EVERYTHING: &str = "CREATE TABLE everything (
    b boolean, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, t text, by bytea,
    d date, tm time, ts timestamp, tz timestamptz, u uuid, j jsonb, n numeric,
    r4 int4range, r8 int8range, rn numrange, a4 int4[], a8 int8[], an numeric[], at text[],
    iv interval, nothing text)";

#[tokio::test]
async fn every_value_type_goes_both_ways() {
    let db = PgServer::start();
    let app = app(&format!("\"postgres://127.0.0.1:{}\"", db.port));
    let server = Server::start(&app);
    let url = db.url();
    assert_eq!(
        pg(&server, &url, 4, "execute", EVERYTHING).await,
        (200, "0".into())
    );
    let insert = format!(
        "INSERT INTO everything VALUES ({})",
        (1..=24)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (status, text) = pg(&server, &url, 4, "roundtrip", &insert).await;
    assert_eq!(status, 200, "{text}");
    for expected in [
        "Boolean(true)",
        "Int16(-7)",
        "Int32(70000)",
        "Int64(-9000000000)",
        "Floating32(1.5)",
        "Floating64(-2.25)",
        "Str(\"héllo\")",
        "Binary([0, 1, 255])",
        "Date((2024, 2, 29))",
        "Time((13, 14, 15, 500000000))",
        "Datetime((1999, 12, 31, 23, 59, 59, 0))",
        "Datetime((2023, 11, 14, 22, 13, 20, 0))",
        "Uuid(\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\")",
        "Decimal(\"-12345.6789\")",
        "RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((10, RangeBoundKind::Exclusive))))",
        "RangeInt64((None, Some((5, RangeBoundKind::Exclusive))))",
        "RangeDecimal((Some((\"1.5\", RangeBoundKind::Inclusive)), Some((\"2.5\", RangeBoundKind::Exclusive))))",
        "ArrayInt32([Some(1), None, Some(3)])",
        "ArrayInt64([Some(-1)])",
        "ArrayDecimal([Some(\"0.1\"), None])",
        "ArrayStr([Some(\"a\"), Some(\"b c\")])",
        "Interval(Interval { micros: 1500000, days: 2, months: 3 })",
        "DbNull",
        "data-type: DbDataType::Uuid",
        "data-type: DbDataType::RangeDecimal",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    // jsonb comes back as PostgreSQL normalises it.
    assert!(
        text.contains(&format!("Jsonb({:?})", br#"{"a": [1, 2]}"#.to_vec())),
        "{text}"
    );
    // A value of a type the interface has no case for is passed as its bytes.
    let (_, text) = pg(
        &server,
        &url,
        4,
        "query",
        "SELECT '1.2.3.4'::inet AS address",
    )
    .await;
    assert!(
        text.contains("Other(\"inet\")") && text.contains("Unsupported("),
        "{text}"
    );
}

#[tokio::test]
async fn older_versions_see_what_they_can_carry() {
    let db = PgServer::start();
    let app = app(&format!("\"postgres://127.0.0.1:{}\"", db.port));
    let server = Server::start(&app);
    let url = db.url();
    let select =
        "SELECT 42::int4 AS n, 'x'::text AS t, DATE '2020-01-02' AS d, gen_random_uuid() AS u";
    let (status, v3) = pg(&server, &url, 3, "query", select).await;
    assert_eq!(status, 200, "{v3}");
    assert!(
        v3.contains("Int32(42)") && v3.contains("Date((2020, 1, 2))"),
        "{v3}"
    );
    assert!(v3.contains("DbValue::Unsupported"), "{v3}");
    let (status, v2) = pg(&server, &url, 2, "query", select).await;
    assert_eq!(status, 200, "{v2}");
    assert!(
        v2.contains("Int32(42)") && v2.contains("Str(\"x\")"),
        "{v2}"
    );
    assert_eq!(v2.matches("DbValue::Unsupported").count(), 2, "{v2}");
    assert_eq!(
        pg(&server, &url, 2, "execute", "CREATE TABLE t (x int)").await,
        (200, "0".into())
    );
}

#[tokio::test]
async fn errors_say_what_failed() {
    let db = PgServer::start();
    let app = app(&format!("\"postgres://127.0.0.1:{}\"", db.port));
    let server = Server::start(&app);
    let url = db.url();
    let (status, text) = pg(&server, &url, 4, "query", "SELECT * FROM missing").await;
    assert_eq!(status, 500);
    assert!(
        text.contains("QueryFailed(QueryError::DbError") && text.contains("42P01"),
        "{text}"
    );
    let (_, text) = pg(&server, &url, 3, "query", "SELECT * FROM missing").await;
    assert!(
        text.contains("QueryFailed(\"") && text.contains("missing"),
        "{text}"
    );
    let (_, text) = pg(&server, &url, 4, "badparam", "SELECT $1::int4").await;
    assert!(
        text.contains("BadParameter(\"a str parameter cannot be sent as int4\")"),
        "{text}"
    );
    // A server the component was not granted.
    let other = PgServer::start();
    let (_, text) = pg(&server, &other.url(), 4, "query", "SELECT 1").await;
    assert!(text.contains("is not permitted"), "{text}");
    server.wait_for_log(&format!(
        "add \"postgres://127.0.0.1:{}\" to `allowed_outbound_hosts`",
        other.port
    ));
}
