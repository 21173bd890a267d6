//! The one log line per request, written after the response has gone out: each worker
//! thread queues its requests' records and one task of its own formats them and writes
//! each batch to stderr in one write.

use http::{Method, StatusCode, Uri};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, SystemTime};

/// What is logged about one request.
pub(crate) struct AccessRecord {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) status: StatusCode,
    pub(crate) elapsed: Duration,
    /// The app, on a host of many apps.
    pub(crate) app: Option<Arc<str>>,
    /// `None` when no route matched.
    pub(crate) component: Option<Arc<str>>,
    pub(crate) request_id: Arc<str>,
}

/// Whether access lines carry terminal colours, as the rest of the log does on a terminal.
static ANSI: AtomicBool = AtomicBool::new(false);

/// Colours access lines like the other log lines (set when stderr is a terminal).
pub fn use_ansi_colours(enabled: bool) {
    ANSI.store(enabled, Ordering::Relaxed);
}

impl AccessRecord {
    /// Appends the record as one line in the log's format (the one `tracing-subscriber`'s
    /// full formatter gives every other line); formatting it directly instead of through a
    /// `tracing` event costs a fraction as much, and this runs once per request.
    fn format_into(&self, line: &mut String, at: SystemTime, ansi: bool) {
        let (dim, italic, green, reset) = if ansi {
            ("\x1b[2m", "\x1b[3m", "\x1b[32m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let _ = write!(
            line,
            "{dim}{time}{reset} {green} INFO{reset} {dim}kite::request{reset}{dim}:{reset} {method} {path} {status} {ms:.2}ms ",
            time = humantime::format_rfc3339_micros(at),
            method = self.method,
            status = self.status.as_u16(),
            ms = self.elapsed.as_secs_f64() * 1000.0,
        );
        if let Some(app) = &self.app {
            let _ = write!(line, "{italic}app{reset}{dim}={reset}{app} ");
        }
        let _ = writeln!(
            line,
            "{italic}component{reset}{dim}={reset}{component} {italic}request_id{reset}{dim}={reset}{id}",
            component = self.component.as_deref().unwrap_or("-"),
            id = self.request_id,
        );
    }
}

/// Writes `records` to stderr in one write.
fn write_lines(records: impl IntoIterator<Item = AccessRecord>, text: &mut String) {
    text.clear();
    let (now, ansi) = (SystemTime::now(), ANSI.load(Ordering::Relaxed));
    for record in records {
        record.format_into(text, now, ansi);
    }
    if !text.is_empty() {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

#[derive(Default)]
struct Queue {
    records: Vec<AccessRecord>,
    /// The worker's writer task, while it waits for records.
    writer: Option<Waker>,
    /// Whether this thread runs a writer task at all.
    has_writer: bool,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::default();
}

/// Where a host of many apps sends the access lines of the apps someone is watching.
pub trait AccessTap: Send + Sync {
    /// Whether lines of `app` are wanted now (cheap; asked for every request).
    fn wants(&self, app: &str) -> bool;
    fn line(&self, app: &str, line: String);
}

static TAP: std::sync::OnceLock<Box<dyn AccessTap>> = std::sync::OnceLock::new();

/// Installs the tap; the first call wins.
pub fn set_access_tap(tap: Box<dyn AccessTap>) {
    let _ = TAP.set(tap);
}

/// Logs `record` once the current task yields (on a worker thread), or now (elsewhere, or
/// when the access log is filtered out).
pub(crate) fn log(record: AccessRecord) {
    if !tracing::enabled!(target: "kite::request", tracing::Level::INFO) {
        return;
    }
    if let (Some(tap), Some(app)) = (TAP.get(), &record.app) {
        if tap.wants(app) {
            let mut line = String::new();
            record.format_into(&mut line, SystemTime::now(), false);
            line.truncate(line.trim_end().len());
            tap.line(app, line);
        }
    }
    let record = QUEUE.with_borrow_mut(|queue| {
        if !queue.has_writer {
            return Some(record);
        }
        queue.records.push(record);
        if let Some(writer) = queue.writer.take() {
            writer.wake();
        }
        None
    });
    if let Some(record) = record {
        write_lines([record], &mut String::new());
    }
}

/// Writes this thread's queued records as they come; runs for the life of the worker.
/// Records still queued when the task is dropped are written then.
pub(crate) async fn write_queued_records() {
    struct FlushOnDrop;
    impl Drop for FlushOnDrop {
        fn drop(&mut self) {
            QUEUE.with_borrow_mut(|queue| queue.has_writer = false);
            let queued = QUEUE.with_borrow_mut(|queue| std::mem::take(&mut queue.records));
            write_lines(queued, &mut String::new());
        }
    }
    QUEUE.with_borrow_mut(|queue| queue.has_writer = true);
    let _flush = FlushOnDrop;
    let mut batch = Vec::new();
    let mut text = String::new();
    loop {
        poll_fn(|cx| {
            QUEUE.with_borrow_mut(|queue| {
                if queue.records.is_empty() {
                    queue.writer = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    std::mem::swap(&mut queue.records, &mut batch);
                    Poll::Ready(())
                }
            })
        })
        .await;
        write_lines(batch.drain(..), &mut text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn record(component: Option<&str>) -> AccessRecord {
        AccessRecord {
            method: Method::POST,
            uri: "http://localhost/todos?done=1".parse().unwrap(),
            status: StatusCode::CREATED,
            elapsed: Duration::from_micros(1234),
            app: None,
            component: component.map(Arc::from),
            request_id: Arc::from("1fbe112f-0"),
        }
    }

    #[test]
    fn lines_have_the_log_format_of_every_other_line() {
        let at = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        let mut text = String::new();
        record(Some("todo")).format_into(&mut text, at, false);
        record(None).format_into(&mut text, at, false);
        assert_eq!(
            text,
            "2026-11-18T11:06:40.123456Z  INFO kite::request: POST /todos?done=1 201 1.23ms component=todo request_id=1fbe112f-0\n\
             2026-11-18T11:06:40.123456Z  INFO kite::request: POST /todos?done=1 201 1.23ms component=- request_id=1fbe112f-0\n"
        );
    }

    #[test]
    fn colours_match_the_terminal_format() {
        let mut text = String::new();
        record(Some("todo")).format_into(&mut text, UNIX_EPOCH, true);
        assert!(text.starts_with("\x1b[2m1970-01-01T00:00:00.000000Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mkite::request\x1b[0m\x1b[2m:\x1b[0m POST"));
        assert!(text.ends_with("\x1b[3mrequest_id\x1b[0m\x1b[2m=\x1b[0m1fbe112f-0\n"));
    }
}
