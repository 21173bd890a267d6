//! Linear-time `instr()`, `replace()` and two-argument `trim()`s for guest SQL. SQLite's own
//! take time proportional to the product of their arguments' lengths, within one step.

use memchr::memmem;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::Connection;
use std::borrow::Cow;
use std::collections::HashMap;

/// Registers the replacements on `connection`, refusing results over `max_bytes`.
pub(crate) fn install(connection: &Connection, max_bytes: usize) -> rusqlite::Result<()> {
    // Innocuous: usable in views, triggers, checks and indexes with the schema untrusted,
    // as SQLite's own are.
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    connection.create_scalar_function("instr", 2, flags, instr)?;
    connection.create_scalar_function("replace", 3, flags, move |ctx: &Context<'_>| {
        replace(ctx, max_bytes)
    })?;
    for (name, ends) in [
        ("trim", Ends::Both),
        ("ltrim", Ends::Start),
        ("rtrim", Ends::End),
    ] {
        connection
            .create_scalar_function(name, 2, flags, move |ctx: &Context<'_>| trim(ctx, ends))?;
    }
    connection.create_scalar_function(
        "unhex",
        2,
        flags,
        |_: &Context<'_>| -> rusqlite::Result<RawText> {
            Err(rusqlite::Error::UserFunctionError(
                "unhex() with a second argument is not available to guests".into(),
            ))
        },
    )
}

/// Text that may hold any bytes, as SQLite's own text results may.
struct RawText(Vec<u8>);

impl ToSql for RawText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(&self.0)))
    }
}

/// `instr(X, Y)`: the 1-based position of the first `Y` in `X` (in bytes if both are blobs,
/// else in characters, matching only where a character starts), 0 if there is none, NULL if
/// either is NULL.
fn instr(ctx: &Context<'_>) -> rusqlite::Result<Option<i64>> {
    let (haystack, needle) = (ctx.get_raw(0), ctx.get_raw(1));
    let as_text = !matches!((haystack, needle), (ValueRef::Blob(_), ValueRef::Blob(_)));
    let (Some(haystack), Some(needle)) = (bytes_of(haystack), bytes_of(needle)) else {
        return Ok(None);
    };
    if needle.is_empty() {
        return Ok(Some(1));
    }
    // A needle that starts inside a character can never match where one starts.
    if as_text && is_continuation(needle[0]) {
        return Ok(Some(0));
    }
    let position = match memmem::find(&haystack, &needle) {
        None => return Ok(Some(0)),
        Some(offset) if as_text => characters(&haystack[..offset]),
        Some(offset) => offset,
    };
    Ok(Some(position as i64 + 1))
}

/// `replace(X, Y, Z)`: `X` with every `Y` replaced by `Z`, left to right, as text; `X` as
/// text when `Y` is empty or starts with a NUL byte; NULL if any of them is NULL.
fn replace(ctx: &Context<'_>, max_bytes: usize) -> rusqlite::Result<Option<RawText>> {
    let (Some(text), Some(pattern)) = (bytes_of(ctx.get_raw(0)), bytes_of(ctx.get_raw(1))) else {
        return Ok(None);
    };
    if pattern.first().is_none_or(|&first| first == 0) {
        return Ok(Some(RawText(text.into_owned())));
    }
    let Some(with) = bytes_of(ctx.get_raw(2)) else {
        return Ok(None);
    };
    let mut result = Vec::new();
    let mut from = 0;
    for at in memmem::find_iter(&text, &pattern) {
        result.extend_from_slice(&text[from..at]);
        result.extend_from_slice(&with);
        from = at + pattern.len();
        if result.len() + (text.len() - from) > max_bytes {
            return Err(too_big());
        }
    }
    result.extend_from_slice(&text[from..]);
    Ok(Some(RawText(result)))
}

#[derive(Clone, Copy)]
enum Ends {
    Start,
    End,
    Both,
}

/// `trim(X, Y)`, `ltrim(X, Y)`, `rtrim(X, Y)`: `X` as text without the characters of `Y` at
/// its ends; NULL if either is NULL.
fn trim(ctx: &Context<'_>, ends: Ends) -> rusqlite::Result<Option<RawText>> {
    let (Some(text), Some(set)) = (bytes_of(ctx.get_raw(0)), bytes_of(ctx.get_raw(1))) else {
        return Ok(None);
    };
    // Each character of `Y` (as SQLite splits it), with where it first appears: at an end
    // where several would match, SQLite takes the one first in `Y`.
    let mut first_seen: HashMap<&[u8], usize> = HashMap::new();
    let mut lengths = Vec::new();
    for (index, character) in split_characters(&set).enumerate() {
        if character.len() > 4 {
            return Err(rusqlite::Error::UserFunctionError(
                "trim(): the characters to remove must be valid UTF-8".into(),
            ));
        }
        first_seen.entry(character).or_insert(index);
        if !lengths.contains(&character.len()) {
            lengths.push(character.len());
        }
    }
    let (mut start, mut end) = (0, text.len());
    if matches!(ends, Ends::Start | Ends::Both) {
        while let Some(length) = first_in_set(&lengths, &first_seen, |l| text[start..end].get(..l))
        {
            start += length;
        }
    }
    if matches!(ends, Ends::End | Ends::Both) {
        while let Some(length) = first_in_set(&lengths, &first_seen, |l| {
            (end - start >= l).then(|| &text[end - l..end])
        }) {
            end -= length;
        }
    }
    Ok(Some(RawText(text[start..end].to_vec())))
}

/// The length of the character of the set (of the given `lengths`) that `piece(length)` is,
/// taking the one first in the set where several are.
fn first_in_set<'t>(
    lengths: &[usize],
    first_seen: &HashMap<&[u8], usize>,
    piece: impl Fn(usize) -> Option<&'t [u8]>,
) -> Option<usize> {
    lengths
        .iter()
        .filter_map(|&length| {
            let candidate = piece(length)?;
            first_seen.get(candidate).map(|&index| (index, length))
        })
        .min()
        .map(|(_, length)| length)
}

/// `bytes` cut into characters as SQLite does: a byte, and the continuation bytes after it.
fn split_characters(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let (&first, after) = rest.split_first()?;
        let length = if first >= 0xC0 {
            1 + after.iter().take_while(|&&b| is_continuation(b)).count()
        } else {
            1
        };
        let (character, remaining) = rest.split_at(length);
        rest = remaining;
        Some(character)
    })
}

fn too_big() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
        Some("string or blob too big".into()),
    )
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// A value's bytes as SQLite would see it as text (blobs as they are); `None` for NULL.
fn bytes_of(value: ValueRef<'_>) -> Option<Cow<'_, [u8]>> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Cow::Owned(i.to_string().into_bytes())),
        ValueRef::Real(r) => Some(Cow::Owned(real_as_text(r).into_bytes())),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(Cow::Borrowed(bytes)),
    }
}

/// UTF-8 characters in `bytes`, counted as SQLite does (every byte that does not continue
/// a character starts one).
fn characters(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| !is_continuation(b)).count()
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
    fn both(sql: &str) -> (rusqlite::types::Value, rusqlite::types::Value) {
        let builtin = Connection::open_in_memory().unwrap();
        let replaced = Connection::open_in_memory().unwrap();
        install(&replaced, 1 << 20).unwrap();
        let run = |c: &Connection| {
            c.query_row(sql, [], |row| row.get::<_, rusqlite::types::Value>(0))
                .unwrap()
        };
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
            "SELECT replace('abc', '', NULL)",
            "SELECT hex(replace('a' || char(0) || 'b', char(0), 'Z'))",
            "SELECT hex(replace(x'ff61', 'a', 'b'))",
            "SELECT typeof(replace(x'ff61', 'a', 'b'))",
            "SELECT instr(CAST(x'c3a9' AS TEXT), CAST(x'a9' AS TEXT))",
            "SELECT instr('ééaé', 'aé')",
            "SELECT trim('  hi  ')",
            "SELECT trim('xxhixx', 'x')",
            "SELECT ltrim('xyhiyx', 'yx')",
            "SELECT rtrim('xyhiyx', 'yx')",
            "SELECT trim('ééhéé', 'é')",
            "SELECT trim('abc', '')",
            "SELECT trim(NULL, 'a')",
            "SELECT trim('abc', NULL)",
            "SELECT trim(12321, 1)",
            "SELECT hex(trim(x'c3a9c3', x'c3'))",
            "SELECT hex(trim(CAST(x'c3a9c3' AS TEXT), CAST(x'c3a9c3' AS TEXT)))",
        ] {
            let (builtin, replaced) = both(sql);
            assert_eq!(builtin, replaced, "{sql}");
        }
    }

    #[test]
    fn two_argument_unhex_is_refused() {
        let connection = Connection::open_in_memory().unwrap();
        install(&connection, 1 << 20).unwrap();
        assert!(connection
            .query_row("SELECT unhex('41 42', ' ')", [], |row| row
                .get::<_, Vec<u8>>(0))
            .is_err());
        let one: Vec<u8> = connection
            .query_row("SELECT unhex('4142')", [], |row| row.get(0))
            .unwrap();
        assert_eq!(one, b"AB");
    }

    #[test]
    fn worst_cases_take_linear_time() {
        let connection = Connection::open_in_memory().unwrap();
        install(&connection, 64 << 20).unwrap();
        let started = std::time::Instant::now();
        let found: i64 = connection
            .query_row(
                "SELECT instr(replace(hex(zeroblob(4000000)), '0', 'a'), \
                 replace(hex(zeroblob(1000000)), '0', 'a') || 'b') \
                 + length(trim(hex(zeroblob(4000000)), hex(zeroblob(1000000)) || 'x'))",
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
