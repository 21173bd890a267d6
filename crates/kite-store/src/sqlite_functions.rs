//! Linear-time `instr()` and `replace()` for guest SQL. SQLite's own take time proportional
//! to the product of their arguments' lengths, inside one step no deadline can interrupt.

use memchr::memmem;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

/// Registers the replacements on `connection`, refusing results over `max_bytes`.
pub(crate) fn install(connection: &Connection, max_bytes: usize) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    connection.create_scalar_function("instr", 2, flags, instr)?;
    connection.create_scalar_function("replace", 3, flags, move |ctx: &Context<'_>| {
        replace(ctx, max_bytes)
    })
}

/// `instr(X, Y)`: the 1-based position of the first `Y` in `X` (in bytes if both are blobs,
/// else in characters), 0 if there is none, NULL if either is NULL.
fn instr(ctx: &Context<'_>) -> rusqlite::Result<Option<i64>> {
    let (haystack, needle) = (ctx.get_raw(0), ctx.get_raw(1));
    let both_blobs = matches!((haystack, needle), (ValueRef::Blob(_), ValueRef::Blob(_)));
    let (Some(haystack), Some(needle)) = (bytes_of(haystack), bytes_of(needle)) else {
        return Ok(None);
    };
    let position = match memmem::find(&haystack, &needle) {
        None => return Ok(Some(0)),
        Some(offset) if both_blobs => offset,
        Some(offset) => characters(&haystack[..offset]),
    };
    Ok(Some(position as i64 + 1))
}

/// `replace(X, Y, Z)`: `X` with every `Y` replaced by `Z`, as text (`X` as text when `Y` is
/// empty); NULL if any is NULL.
fn replace(ctx: &Context<'_>, max_bytes: usize) -> rusqlite::Result<Value> {
    let (Some(text), Some(pattern), Some(with)) = (
        bytes_of(ctx.get_raw(0)),
        bytes_of(ctx.get_raw(1)),
        bytes_of(ctx.get_raw(2)),
    ) else {
        return Ok(Value::Null);
    };
    if pattern.is_empty() {
        return Ok(Value::Text(String::from_utf8_lossy(&text).into_owned()));
    }
    let matches: Vec<usize> =
        memmem::find_iter(&text, &pattern).fold(Vec::new(), |mut kept, at| {
            // Occurrences do not overlap: each search goes on after the previous match.
            if kept.last().is_none_or(|&last| at >= last + pattern.len()) {
                kept.push(at);
            }
            kept
        });
    let length = text.len() - matches.len() * pattern.len() + matches.len() * with.len();
    if length > max_bytes {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
            Some("string or blob too big".into()),
        ));
    }
    let mut result = Vec::with_capacity(length);
    let mut from = 0;
    for at in matches {
        result.extend_from_slice(&text[from..at]);
        result.extend_from_slice(&with);
        from = at + pattern.len();
    }
    result.extend_from_slice(&text[from..]);
    Ok(Value::Text(String::from_utf8_lossy(&result).into_owned()))
}

/// A value's bytes as SQLite would see it as text (blobs as they are); `None` for NULL.
fn bytes_of(value: ValueRef<'_>) -> Option<Vec<u8>> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(r) => Some(real_as_text(r).into_bytes()),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(bytes.to_vec()),
    }
}

/// UTF-8 characters in `bytes`, counted as SQLite does (every byte that does not continue
/// a character starts one).
fn characters(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

/// A real as SQLite writes it as text, by SQLite's own formatter (`%!.17g`, its default for
/// turning reals into text).
fn real_as_text(value: f64) -> String {
    // SAFETY: the format takes exactly the two arguments given (an int precision and a
    // double); SQLite returns a NUL-terminated string it allocated, or null when out of
    // memory, which is read once and then freed with SQLite's own allocator.
    unsafe {
        let text = rusqlite::ffi::sqlite3_mprintf(c"%!.*g".as_ptr(), 17 as std::ffi::c_int, value);
        if text.is_null() {
            return String::new();
        }
        let owned = std::ffi::CStr::from_ptr(text)
            .to_string_lossy()
            .into_owned();
        rusqlite::ffi::sqlite3_free(text.cast());
        owned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `sql` on a connection with SQLite's own functions and on one with these.
    fn both(sql: &str) -> (Value, Value) {
        let builtin = Connection::open_in_memory().unwrap();
        let replaced = Connection::open_in_memory().unwrap();
        install(&replaced, 1 << 20).unwrap();
        let run = |c: &Connection| c.query_row(sql, [], |row| row.get::<_, Value>(0)).unwrap();
        (run(&builtin), run(&replaced))
    }

    #[test]
    fn they_agree_with_sqlite() {
        for sql in [
            "SELECT instr('hello world', 'o')",
            "SELECT instr('héllo wörld', 'w')",
            "SELECT instr('abc', '')",
            "SELECT instr('abc', 'x')",
            "SELECT instr(x'00010203', x'0203')",
            "SELECT instr(x'c3a9c3a9', 'é')",
            "SELECT instr(12345, 34)",
            "SELECT instr(1.5, '.')",
            "SELECT instr(NULL, 'a')",
            "SELECT instr('a', NULL)",
            "SELECT replace('hello world', 'o', '0')",
            "SELECT replace('aaaa', 'aa', 'b')",
            "SELECT replace('abc', '', 'x')",
            "SELECT replace(123, '', 'x')",
            "SELECT replace(1231, 1, 'one')",
            "SELECT replace('abc', 'b', NULL)",
            "SELECT replace(x'616263', 'b', 'B')",
            "SELECT replace(0.1, '.', ',')",
            "SELECT replace(1e20, 'e', 'E')",
            "SELECT replace(123456789012345678.0, '.', ',')",
            "SELECT replace(-2.5e-7, 'e', 'E')",
            "SELECT replace(100.0, '.', ',')",
            "SELECT replace(1e14, '.', ',')",
            "SELECT replace(1e15, '.', ',')",
            "SELECT replace(1e16, '.', ',')",
            "SELECT replace(1e17, '.', ',')",
            "SELECT replace(12345678901234567.0, '.', ',')",
            "SELECT replace(123456789012345.6, '.', ',')",
            "SELECT replace(0.0001, '.', ',')",
            "SELECT replace(0.00001, '.', ',')",
            "SELECT replace(1.0 / 3, '.', ',')",
            "SELECT replace(-0.0, '.', ',')",
            "SELECT replace(5e-324, '.', ',')",
        ] {
            let (builtin, replaced) = both(sql);
            assert_eq!(builtin, replaced, "{sql}");
        }
    }

    #[test]
    fn worst_cases_take_linear_time() {
        let connection = Connection::open_in_memory().unwrap();
        install(&connection, 64 << 20).unwrap();
        let started = std::time::Instant::now();
        let found: i64 = connection
            .query_row(
                "SELECT instr(replace(hex(zeroblob(4000000)), '0', 'a'), \
                 replace(hex(zeroblob(1000000)), '0', 'a') || 'b')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(found, 0);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
