//! Guest stdout and stderr, written line by line into Kite's log, tagged with the
//! component and request id. Nothing a guest prints reaches the host's own stdio.

use crate::request_tag::RequestTag;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Lines longer than this are logged in pieces so a guest cannot grow the buffer forever.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone)]
pub(crate) struct GuestLog {
    component: Arc<str>,
    request: RequestTag,
    stream: &'static str,
}

impl GuestLog {
    pub(crate) fn new(component: Arc<str>, request: RequestTag, stream: &'static str) -> Self {
        GuestLog {
            component,
            request,
            stream,
        }
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

struct LineWriter {
    log: GuestLog,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        tracing::info!(
            target: "kite::guest",
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
