//! Guest stdout and stderr, written line by line into Kite's log, tagged with the
//! component and request id, escaped, and bounded per request and per component.

use crate::request_tag::RequestTag;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Lines longer than this are logged in pieces so a guest cannot grow the buffer forever.
const MAX_LINE: usize = 16 * 1024;
/// Bytes of output one request may log (stdout and stderr together); the rest is dropped.
pub const MAX_LOG_BYTES_PER_REQUEST: usize = 64 * 1024;
/// Bytes per second all of one component's requests may log together, after a burst of
/// [`LOG_BURST_BYTES`]: many requests each within their own cap cannot flood the log.
pub const LOG_BYTES_PER_SECOND: f64 = 256.0 * 1024.0;
const LOG_BURST_BYTES: f64 = 1024.0 * 1024.0;
/// What a log record costs at least, whatever the guest wrote (timestamp, fields, framing).
const MIN_RECORD_BYTES: usize = 128;

/// One component's log rate: a token bucket shared by all its instances.
pub(crate) struct LogRate {
    bucket: Mutex<(f64, Instant)>,
}

impl LogRate {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(LogRate {
            bucket: Mutex::new((LOG_BURST_BYTES, Instant::now())),
        })
    }

    /// Whether `bytes` more may be logged now (and if so, counts them).
    fn take(&self, bytes: usize) -> bool {
        let Ok(mut bucket) = self.bucket.lock() else {
            return false;
        };
        let (tokens, last) = &mut *bucket;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * LOG_BYTES_PER_SECOND)
            .min(LOG_BURST_BYTES);
        *last = now;
        if *tokens < bytes as f64 {
            return false;
        }
        *tokens -= bytes as f64;
        true
    }
}

/// What one instance may still log, shared by its stdout and stderr.
struct RequestBudget {
    logged: AtomicUsize,
    warned: AtomicBool,
}

#[derive(Clone)]
pub(crate) struct GuestLog {
    component: Arc<str>,
    /// The app, on a host of many apps.
    app: Option<Arc<str>>,
    request: RequestTag,
    stream: &'static str,
    budget: Arc<RequestBudget>,
    rate: Arc<LogRate>,
}

impl GuestLog {
    /// The instance's stdout and stderr, sharing one per-request budget.
    pub(crate) fn pair(
        (component, app): (Arc<str>, Option<Arc<str>>),
        request: RequestTag,
        rate: Arc<LogRate>,
    ) -> (GuestLog, GuestLog) {
        let budget = Arc::new(RequestBudget {
            logged: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
        });
        let stdout = GuestLog {
            component,
            app,
            request,
            stream: "stdout",
            budget,
            rate,
        };
        let stderr = GuestLog {
            stream: "stderr",
            ..stdout.clone()
        };
        (stdout, stderr)
    }

    /// Whether a line of `bytes` may be logged; on the first refusal, says so once.
    fn admit(&self, bytes: usize) -> bool {
        let logged = self.budget.logged.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let reason = if logged > MAX_LOG_BYTES_PER_REQUEST {
            "it passed its limit of 64 KiB per request"
        } else if !self.rate.take(bytes) {
            "its component passed its log rate of 256 KiB/s"
        } else {
            return true;
        };
        if !self.budget.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "kite::guest",
                app = self.app.as_deref().map(tracing::field::display),
                component = %self.component,
                request_id = %self.request,
                "the rest of this request's output is dropped: {reason}"
            );
        }
        false
    }
}

impl GuestLog {
    /// Whether this request has used its whole budget: everything more is dropped unread.
    fn exhausted(&self) -> bool {
        self.budget.logged.load(Ordering::Relaxed) > MAX_LOG_BYTES_PER_REQUEST
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: self.clone(),
            pending: Vec::new(),
        })
    }
}

/// `line` as one log line: control characters (a `\r` that would overwrite the line, or
/// terminal escapes) are shown escaped; tabs are kept.
pub fn escape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

struct LineWriter {
    log: GuestLog,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        // A record costs its fields and framing too, so even an empty line counts as a
        // short one. Admitted before any copy is made of it.
        if !self.log.admit(line.len().max(MIN_RECORD_BYTES)) {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let line = escape_line(line.strip_suffix('\n').unwrap_or(&line));
        tracing::info!(
            target: "kite::guest",
            app = self.log.app.as_deref().map(tracing::field::display),
            component = %self.log.component,
            request_id = %self.log.request,
            stream = self.log.stream,
            "{line}"
        );
    }

    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.emit(&pending);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // At most a line's worth per call: a WASI 0.3 guest hands over its whole buffer at
        // once, and one call must not copy or scan megabytes while holding the thread.
        let buf = &buf[..buf.len().min(MAX_LINE)];
        if self.log.exhausted() {
            return Poll::Ready(Ok(buf.len()));
        }
        let mut rest = buf;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(newline + 1);
            if self.pending.is_empty() {
                self.emit(line);
            } else {
                self.pending.extend_from_slice(line);
                self.flush_pending();
            }
            rest = after;
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() >= MAX_LINE {
            self.flush_pending();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush_pending();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_line("ok\tfine"), "ok\tfine");
        assert_eq!(escape_line("fake\rline"), "fake\\rline");
        assert_eq!(escape_line("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape_line("a\nb"), "a\\nb");
    }

    #[test]
    fn a_request_logs_at_most_its_budget_and_the_component_its_rate() {
        let rate = LogRate::new();
        let (stdout, stderr) =
            GuestLog::pair(("c".into(), None), RequestTag::default(), rate.clone());
        assert!(stdout.admit(MAX_LOG_BYTES_PER_REQUEST / 2));
        assert!(stderr.admit(MAX_LOG_BYTES_PER_REQUEST / 2));
        assert!(!stdout.admit(1), "past the per-request budget");
        // Other requests draw on the component's bucket until it is empty.
        let mut admitted = 0usize;
        for _ in 0..64 {
            let (stdout, _) =
                GuestLog::pair(("c".into(), None), RequestTag::default(), rate.clone());
            if stdout.admit(60 * 1024) {
                admitted += 60 * 1024;
            }
        }
        assert!(admitted < 2 * LOG_BURST_BYTES as usize, "{admitted}");
    }
}
