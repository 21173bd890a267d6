//! The Spin SQLite interface on the app's default database: statements with every value
//! type, access control by grant, and data that outlives the server.

mod common;
use common::{Server, TestApp};

fn app() -> TestApp {
    TestApp::probe(
        "[[route]]\npath = \"/stranger/...\"\ncomponent = \"stranger\"\n[[route]]\npath = \"/...\"\ncomponent = \"db\"\n\
         [component.db]\nsource = \"PROBE\"\nsqlite_databases = [\"default\"]\n\
         [component.stranger]\nsource = \"PROBE\"\n",
    )
}

#[tokio::test]
async fn statements_with_every_value_type() {
    let app = app();
    let server = Server::start(&app);
    let (status, body) = server
        .post(
            "/sql?db=default",
            "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .post(
            "/sql?db=default",
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)\ni:42\nr:2.5\nt:hello\nb:00ff\nn",
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "columns: \n"));
    let (status, body) = server
        .post("/sql?db=default", "SELECT * FROM t WHERE i = ?\ni:42")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "columns: i,r,s,b,n\nrow: Value::Integer(42) | Value::Real(2.5) | Value::Text(\"hello\") | Value::Blob([0, 255]) | Value::Null\n"
    );
    let (status, body) = server.post("/sql?db=default", "SELEC broken").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("Error::Io") && body.contains("syntax error"),
        "{body}"
    );
    assert!(app.path().join(".kite/sqlite/default.sqlite").is_file());
    drop(server);

    let server = Server::start(&app);
    let (_, body) = server
        .post("/sql?db=default", "SELECT count(*) AS n FROM t")
        .await;
    assert_eq!(
        body, "columns: n\nrow: Value::Integer(1)\n",
        "data outlives the server"
    );
}

#[tokio::test]
async fn databases_open_only_where_granted() {
    let app = app();
    let server = Server::start(&app);
    let (status, body) = server.post("/sql?db=other", "SELECT 1").await;
    assert_eq!(
        (status, body.as_str()),
        (404, "error: Error::NoSuchDatabase")
    );
    let (status, body) = server.post("/stranger/sql?db=default", "SELECT 1").await;
    assert_eq!((status, body.as_str()), (403, "error: Error::AccessDenied"));
}

#[tokio::test]
async fn seed_scripts_run_once_per_database() {
    let app = app();
    let init = app.path().join("init.sql");
    std::fs::write(
        &init,
        "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\nINSERT INTO todos (title) VALUES ('first');\n",
    )
    .unwrap();
    let seed = format!("default:@{}", init.display());
    for _ in 0..2 {
        let server = Server::start_with(&app, &["--no-cache", "--sqlite", &seed]);
        let (_, body) = server
            .post("/sql?db=default", "SELECT title FROM todos")
            .await;
        assert_eq!(
            body, "columns: title\nrow: Value::Text(\"first\")\n",
            "applied exactly once"
        );
    }
    let stderr = common::up_fails(&app, &["--sqlite", "other:SELECT 1"]);
    assert!(
        stderr.contains("no backend for SQLite database `other`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_runaway_statement_stops_at_the_deadline_and_frees_the_database() {
    let app = TestApp::probe(
        "[[route]]\npath = \"/...\"\ncomponent = \"db\"\n\
         [component.db]\nsource = \"PROBE\"\nsqlite_databases = [\"default\"]\n\
         [component.db.limits]\ntimeout = \"1s\"\n",
    );
    let server = Server::start(&app);
    let endless =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let started = std::time::Instant::now();
    let both = async {
        tokio::join!(server.post("/sql?db=default", endless), async {
            // Asked while the runaway statement holds the database: answered once it stops.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            server
                .post("/sql?db=default", "SELECT 41 + 1 AS answer")
                .await
        })
    };
    let (runaway, (status, body)) = tokio::time::timeout(std::time::Duration::from_secs(20), both)
        .await
        .expect("the runaway statement was never stopped");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The guest sees the error (400 from the probe), or is stopped itself right after (504).
    assert!(matches!(runaway.0, 400 | 504), "{runaway:?}");
    if runaway.0 == 400 {
        assert!(runaway.1.contains("deadline"), "{runaway:?}");
    }
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Integer(42)"), "{body}");
}

#[tokio::test]
async fn oversized_values_and_results_are_refused() {
    let app = app();
    let server = Server::start(&app);
    let (status, body) = server
        .post("/sql?db=default", "SELECT zeroblob(40000000)")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("too big"), "{body}");
    let many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 40) SELECT zeroblob(1000000) FROM c";
    let (status, body) = server.post("/sql?db=default", many).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("larger than 32 MiB"), "{body}");
    let (status, _) = server.post("/sql?db=default", "SELECT 1").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_when_its_request_ends() {
    let app = app();
    let server = Server::start(&app);
    let (status, body) = server
        .post("/sql?db=default", "CREATE TABLE t (x INTEGER)")
        .await;
    assert_eq!(status, 200, "{body}");
    // Each request opens its own connection; this one ends inside its transaction.
    let (status, body) = server.post("/sql?db=default", "BEGIN").await;
    assert_eq!(status, 200, "{body}");
    // Were that transaction still open, this insert would join it and the ROLLBACK below
    // would undo it.
    let (status, body) = server
        .post("/sql?db=default", "INSERT INTO t VALUES (1)")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post("/sql?db=default", "ROLLBACK").await;
    assert_eq!(status, 400, "no transaction is open any more: {body}");
    let (_, body) = server
        .post("/sql?db=default", "SELECT count(*) FROM t")
        .await;
    assert!(body.contains("row: Value::Integer(1)"), "{body}");
}

#[tokio::test]
async fn while_a_request_holds_a_transaction_others_read_at_once_and_writes_wait() {
    let app = app();
    let server = Server::start(&app);
    let (status, body) = server
        .post("/sql?db=default", "CREATE TABLE t (x INTEGER)")
        .await;
    assert_eq!(status, 200, "{body}");
    let writer = "BEGIN\nINSERT INTO t VALUES (1)\nSELECT count(*) FROM t\nsleep 600\nROLLBACK";
    let started = std::time::Instant::now();
    // Both asked while the writer's transaction is open (it sleeps inside it).
    let after_200_ms = |statement: &'static str| {
        let server = &server;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let (status, body) = server.post("/sql?db=default", statement).await;
            (status, body, started.elapsed())
        }
    };
    let ((status, written), (read_status, read, read_at), (insert_status, inserted, inserted_at)) = tokio::join!(
        server.post("/sql-steps?db=default", writer),
        after_200_ms("SELECT count(*) FROM t"),
        after_200_ms("INSERT INTO t VALUES (2)"),
    );
    assert_eq!(status, 200, "{written}");
    assert!(
        written.contains("row: Value::Integer(1)"),
        "the writer sees its own row: {written}"
    );
    assert!(!written.contains("error"), "{written}");
    assert_eq!(read_status, 200, "{read}");
    assert!(
        read.contains("row: Value::Integer(0)"),
        "saw uncommitted data: {read}"
    );
    assert!(
        read_at < std::time::Duration::from_millis(550),
        "a read waited for the writer's transaction (answered at {read_at:?})"
    );
    assert_eq!(insert_status, 200, "{inserted}");
    assert!(
        inserted_at >= std::time::Duration::from_millis(550),
        "a write ran at {inserted_at:?}, inside or beside the writer's open transaction"
    );
    let (_, body) = server
        .post("/sql?db=default", "SELECT count(*) FROM t")
        .await;
    assert!(body.contains("row: Value::Integer(1)"), "{body}");
}
