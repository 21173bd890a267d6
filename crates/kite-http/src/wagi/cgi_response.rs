//! A CGI program's response head (RFC 3875 §6): header lines up to a blank line, with
//! `Status:` setting the status and `Location:` without it meaning 302.

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, StatusCode};

/// The most bytes a program may write before its blank line.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Headers a program may not set: they describe the connection, which is Kite's.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

#[derive(Debug)]
pub(crate) struct CgiHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// Where the head ends in `output`: (end of the header lines, start of the body), if the
/// blank line has been written. Bytes before `scanned` were looked at before (the search
/// steps back far enough to see a line end that straddles the two).
pub(crate) fn find_head_end(output: &[u8], scanned: usize) -> Option<(usize, usize)> {
    match output {
        [b'\n', ..] => return Some((0, 1)),
        [b'\r', b'\n', ..] => return Some((0, 2)),
        _ => {}
    }
    let from = scanned.saturating_sub(2);
    for i in from..output.len() {
        if output[i] != b'\n' {
            continue;
        }
        match &output[i + 1..] {
            [b'\n', ..] => return Some((i + 1, i + 2)),
            [b'\r', b'\n', ..] => return Some((i + 1, i + 3)),
            _ => {}
        }
    }
    None
}

/// Reads the header lines before the blank line; `Err` says what is wrong with them.
pub(crate) fn parse_head(head: &[u8]) -> Result<CgiHead, String> {
    let mut headers = HeaderMap::new();
    let mut status = None;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(format!("the header line {} has no `:`", shown(line)));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        let name = HeaderName::from_bytes(trim(name))
            .map_err(|_| format!("{} is not a valid header name", shown(name)))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
        if name == "status" {
            let text = value.to_str().unwrap_or_default();
            let code = text.split(' ').next().unwrap_or_default();
            status = Some(
                code.parse::<u16>()
                    .ok()
                    .filter(|code| (200..=599).contains(code))
                    .and_then(|code| StatusCode::from_u16(code).ok())
                    .ok_or_else(|| format!("`Status: {text}` is not a status from 200 to 599"))?,
            );
        } else if !HOP_BY_HOP.contains(&name.as_str()) {
            headers.append(name, value);
        }
    }
    let has = |name| headers.contains_key(name);
    if !has(CONTENT_TYPE) && !has(LOCATION) && status.is_none() {
        return Err("the header block has no `Content-Type`, `Location` or `Status` line".into());
    }
    let status = status.unwrap_or(if has(LOCATION) && !has(CONTENT_TYPE) {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    Ok(CgiHead { status, headers })
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Up to 64 bytes of a program's output, escaped for a log line.
pub(crate) fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(64)];
    let text: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if bytes.len() > cut.len() {
        format!("\"{text}...\"")
    } else {
        format!("\"{text}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<CgiHead, String> {
        let (end, _) = find_head_end(text.as_bytes(), 0).expect("a blank line");
        parse_head(&text.as_bytes()[..end])
    }

    #[test]
    fn content_type_status_and_location() {
        let ok = head("Content-Type: text/plain\r\nX-A: 1\r\n\r\nbody").unwrap();
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.headers["x-a"], "1");
        let created = head("Status: 201 Created\nContent-Type: text/plain\n\n").unwrap();
        assert_eq!(created.status, StatusCode::CREATED);
        assert!(!created.headers.contains_key("status"));
        let moved = head("Location: /elsewhere\n\n").unwrap();
        assert_eq!(moved.status, StatusCode::FOUND);
        let told = head("Status: 303\nLocation: /x\n\n").unwrap();
        assert_eq!(told.status, StatusCode::SEE_OTHER);
    }

    #[test]
    fn the_blank_line_ends_the_head_in_either_line_ending() {
        assert_eq!(find_head_end(b"A: 1\n\nrest", 0), Some((5, 6)));
        assert_eq!(find_head_end(b"A: 1\r\n\r\nrest", 0), Some((6, 8)));
        assert_eq!(find_head_end(b"A: 1\r\n", 0), None);
        assert_eq!(find_head_end(b"\nbody", 0), Some((0, 1)));
        // Found when the blank line arrives in pieces, scanning only what is new.
        let whole = b"A: 1\r\n\r\nrest";
        for split in 1..whole.len() {
            let first = find_head_end(&whole[..split], 0);
            let second = first.or_else(|| find_head_end(whole, split));
            assert_eq!(second, Some((6, 8)), "split at {split}");
        }
    }

    #[test]
    fn bad_heads_say_what_is_wrong() {
        for (text, expected) in [
            ("X-A: 1\n\n", "no `Content-Type`"),
            ("just text\n\n", "has no `:`"),
            (
                "Bad Name: 1\nContent-Type: a\n\n",
                "not a valid header name",
            ),
            ("Status: 99\nContent-Type: a\n\n", "not a status"),
            ("Status: abc\n\n", "not a status"),
            ("Content-Type: a\u{7f}\n\n", "not a valid header value"),
        ] {
            let error = head(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn connection_headers_are_dropped() {
        let head =
            head("Content-Type: a\nTransfer-Encoding: chunked\nConnection: close\n\n").unwrap();
        assert!(!head.headers.contains_key("transfer-encoding"));
        assert!(!head.headers.contains_key("connection"));
    }

    #[test]
    fn output_is_shown_escaped_and_cut() {
        assert_eq!(shown(b"a\nb"), "\"a\\nb\"");
        assert!(shown(&[b'x'; 100]).ends_with("...\""));
    }
}
