//! Confines guest SQL to the one database file it opened, with SQLite's own mechanisms: an
//! authorizer, `SQLITE_LIMIT_ATTACHED = 0`, defensive mode and an untrusted schema.

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::Connection;
use std::cell::RefCell;

/// Pragmas a guest may run, each with or without an argument: they only describe the
/// database (its schema, its integrity) or, for `user_version` and `application_id`, set a
/// number in its own header. Everything else is refused: other pragmas change the
/// connection (shared with later requests), the schema's trust, or touch files.
const SAFE_PRAGMAS: &[&str] = &[
    "application_id",
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
];

/// Functions no guest may call: `load_extension` loads native code; `fts3_tokenizer` reads
/// and registers raw host pointers when given a bound parameter; `json_patch` takes time
/// proportional to the product of its arguments' sizes within one step, which no deadline
/// can interrupt.
const REFUSED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer", "json_patch"];

/// Pragmas a guest may read but not set.
const READ_ONLY_PRAGMAS: &[&str] = &[
    "data_version",
    "encoding",
    "foreign_keys",
    "freelist_count",
    "page_count",
    "page_size",
    "schema_version",
];

/// The longest statement text a guest may send.
pub(crate) const MAX_STATEMENT_BYTES: i32 = 1 << 20;
/// The most instructions one compiled statement may have.
const MAX_PROGRAM_STEPS: i32 = 1_000_000;
/// The longest LIKE or GLOB pattern: matching costs up to its length times the text's.
pub(crate) const MAX_PATTERN_BYTES: i32 = 100;

thread_local! {
    /// Why the authorizer last refused something on this thread: the statement is prepared
    /// and its error mapped on the same thread, so the guest can be told what was refused.
    static LAST_REFUSAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets `connection` up so that statements on it can reach nothing but its main database:
/// no attached databases (so no `ATTACH`, no `VACUUM INTO`), no extensions, no writes to the
/// schema table, no functions with side effects from the schema, and only the pragmas in
/// [`SAFE_PRAGMAS`] / [`READ_ONLY_PRAGMAS`].
pub(crate) fn confine(connection: &mut Connection) -> rusqlite::Result<()> {
    connection.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    // Bounds on what one statement may make SQLite build or scan inside a single step,
    // where the deadline cannot reach: its text, its program, and LIKE/GLOB patterns.
    connection.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_STATEMENT_BYTES)?;
    connection.set_limit(Limit::SQLITE_LIMIT_VDBE_OP, MAX_PROGRAM_STEPS)?;
    connection.set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_PATTERN_BYTES)?;
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, false)?;
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, false)?;
    connection.authorizer(Some(authorize))
}

/// Runs `f` with the authorizer lifted: for the operator's own statements (seeding).
pub(crate) fn unconfined<T>(
    connection: &mut Connection,
    f: impl FnOnce(&mut Connection) -> T,
) -> rusqlite::Result<T> {
    connection.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)?;
    let result = f(connection);
    connection.authorizer(Some(authorize))?;
    Ok(result)
}

/// The reason the authorizer gave for its last refusal on this thread, if any (cleared).
pub(crate) fn take_refusal() -> Option<String> {
    LAST_REFUSAL.with(|last| last.borrow_mut().take())
}

fn authorize(context: AuthContext<'_>) -> Authorization {
    match refusal(&context) {
        None => Authorization::Allow,
        Some(reason) => {
            LAST_REFUSAL.with(|last| *last.borrow_mut() = Some(reason));
            Authorization::Deny
        }
    }
}

/// Why `context` must be refused, or `None` to allow it.
fn refusal(context: &AuthContext<'_>) -> Option<String> {
    // `ALTER TABLE ... RENAME` and `DROP COLUMN` read and rewrite the (always empty)
    // temp schema table themselves; a guest's own writes to it SQLite refuses anyway.
    if let AuthAction::Read { table_name, .. } | AuthAction::Update { table_name, .. } =
        context.action
    {
        if table_name == "sqlite_temp_master" {
            return None;
        }
    }
    match context.database_name {
        Some("temp") => {
            return Some(
                "the temp schema: temporary tables, indexes, triggers and views would outlive the request on a shared connection; use a regular table or a WITH clause".into(),
            )
        }
        Some(database) if database != "main" => {
            return Some(format!(
                "database `{database}`: a statement may use only the database it was opened on"
            ))
        }
        _ => {}
    }
    match context.action {
        AuthAction::Attach { .. } => Some(
            "ATTACH (and VACUUM, which attaches a database): a statement may use only the database it was opened on".into(),
        ),
        AuthAction::Detach { .. } => Some("DETACH: no database is attached".into()),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => pragma_refusal(pragma_name, pragma_value),
        AuthAction::Function { function_name }
            if REFUSED_FUNCTIONS
                .iter()
                .any(|refused| function_name.eq_ignore_ascii_case(refused)) =>
        {
            Some(format!(
                "{}() is not available to guests",
                function_name.to_ascii_lowercase()
            ))
        }
        AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. } => Some(
            "temporary tables, indexes, triggers and views: they would outlive the request on a shared connection; use a regular table or a WITH clause".into(),
        ),
        _ => None,
    }
}

fn pragma_refusal(name: &str, value: Option<&str>) -> Option<String> {
    let name = name.to_ascii_lowercase();
    if SAFE_PRAGMAS.contains(&name.as_str())
        || (value.is_none() && READ_ONLY_PRAGMAS.contains(&name.as_str()))
    {
        return None;
    }
    let allowed = if READ_ONLY_PRAGMAS.contains(&name.as_str()) {
        " may be read but not set".to_string()
    } else {
        format!(
            " is not allowed; allowed: {}; read-only: {}",
            SAFE_PRAGMAS.join(", "),
            READ_ONLY_PRAGMAS.join(", ")
        )
    };
    Some(format!("PRAGMA {name}{allowed}"))
}

#[cfg(test)]
mod tests {
    use crate::{DbError, DbValue, SqliteDatabase, SqliteSession};
    use std::path::Path;
    use std::sync::Arc;

    fn session(path: &Path) -> SqliteSession {
        SqliteSession::new(Arc::new(SqliteDatabase::open(path).unwrap()))
    }

    async fn refused(session: &SqliteSession, statement: &str) -> String {
        match session.execute(statement, &[], None).await {
            Err(DbError::Io(message)) => message,
            other => panic!("`{statement}` must be refused, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn statements_cannot_reach_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = session(&dir.path().join("db/default.sqlite"));
        let evil = dir.path().join("evil.db");
        let copy = dir.path().join("copy.db");
        let attach = format!("ATTACH '{}' AS evil", evil.display());
        assert!(refused(&db, &attach).await.contains("ATTACH"));
        let vacuum = format!("VACUUM INTO '{}'", copy.display());
        let message = refused(&db, &vacuum).await;
        assert!(message.contains("refused"), "{message}");
        let message = refused(&db, "SELECT load_extension('/tmp/x.so')").await;
        assert!(message.contains("load_extension"), "{message}");
        assert!(
            !evil.exists() && !copy.exists(),
            "a file outside the grant was created"
        );
        for statement in [
            "PRAGMA database_list",
            "SELECT * FROM pragma_database_list",
            "SELECT file FROM pragma_database_list",
        ] {
            let message = refused(&db, statement).await;
            assert!(message.contains("database_list"), "{statement}: {message}");
        }
    }

    #[tokio::test]
    async fn connection_state_and_schema_trust_cannot_be_changed() {
        let dir = tempfile::tempdir().unwrap();
        let db = session(&dir.path().join("d.sqlite"));
        db.execute("CREATE TABLE t (x INTEGER)", &[], None)
            .await
            .unwrap();
        for statement in [
            "PRAGMA writable_schema = ON",
            "PRAGMA trusted_schema = ON",
            "PRAGMA journal_mode = DELETE",
            "PRAGMA foreign_keys = OFF",
            "PRAGMA temp_store_directory = '/tmp'",
            "PRAGMA query_only = ON",
            "CREATE TEMP TABLE scratch (x)",
            "CREATE TEMP TRIGGER spy AFTER INSERT ON t BEGIN SELECT 1; END",
            "CREATE TEMP VIEW v AS SELECT 1",
            "CREATE TABLE temp.users (id)",
            "CREATE VIEW temp.v AS SELECT 1",
            "CREATE TRIGGER temp.spy BEFORE INSERT ON t BEGIN SELECT RAISE(IGNORE); END",
            "CREATE TABLE temp.junk AS SELECT 1",
            "SELECT json_patch('{}', '{}')",
        ] {
            let message = refused(&db, statement).await;
            assert!(message.starts_with("refused: "), "{statement}: {message}");
        }
        let message = refused(&db, "UPDATE sqlite_master SET sql = 'x'").await;
        assert!(!message.is_empty());
        // What describes the database stays available.
        let read = |s: &'static str| db.execute(s, &[], None);
        assert_eq!(read("PRAGMA table_info(t)").await.unwrap().rows.len(), 1);
        assert_eq!(
            read("SELECT name FROM pragma_table_info('t')")
                .await
                .unwrap()
                .rows,
            vec![vec![DbValue::Text("x".into())]]
        );
        assert_eq!(
            read("PRAGMA foreign_keys").await.unwrap().rows,
            vec![vec![DbValue::Integer(1)]]
        );
        read("PRAGMA user_version = 7").await.unwrap();
        assert_eq!(
            read("PRAGMA user_version").await.unwrap().rows,
            vec![vec![DbValue::Integer(7)]]
        );
        read("WITH c(x) AS (SELECT 1) SELECT x FROM c")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn seeding_by_the_operator_is_not_confined() {
        let dir = tempfile::tempdir().unwrap();
        let database = SqliteDatabase::open(&dir.path().join("d.sqlite")).unwrap();
        database
            .apply_once("PRAGMA user_version = 2; CREATE TEMP TABLE t (x);")
            .unwrap();
        let db = SqliteSession::new(Arc::new(database));
        assert!(refused(&db, "CREATE TEMP TABLE u (x)")
            .await
            .contains("temporary"));
    }
}
