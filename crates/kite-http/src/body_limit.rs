//! A request body wrapper that streams through but fails once more than the component's
//! `max_request_body` bytes have arrived, or once the client stalls, remembering which.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
use wasmtime_wasi_http::Error as HttpError;

/// What went wrong with a request body, for the response the caller sends instead.
#[derive(Default)]
pub(crate) struct BodyFaults {
    /// More than the limit arrived (413).
    pub(crate) too_large: AtomicBool,
    /// No bytes arrived for the idle timeout while the guest waited for them, or fewer than
    /// [`MIN_BYTES_PER_WINDOW`] in one such period (408).
    pub(crate) stalled: AtomicBool,
}

/// The least a body must bring in each idle-timeout period, so a client that drips a byte
/// now and then cannot keep an instance until its deadline.
pub(crate) const MIN_BYTES_PER_WINDOW: u64 = 1024;

pub(crate) struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    idle_timeout: Duration,
    /// Armed while the guest waits for bytes that have not arrived.
    idle: Option<Pin<Box<Sleep>>>,
    /// When the current period began (at the first frame), and what it has brought.
    window: Option<(std::time::Instant, u64)>,
    faults: Arc<BodyFaults>,
}

impl<B> LimitedBody<B> {
    pub(crate) fn new(
        inner: B,
        limit: u64,
        idle_timeout: Duration,
        faults: Arc<BodyFaults>,
    ) -> Self {
        LimitedBody {
            inner,
            remaining: limit,
            limit,
            idle_timeout,
            idle: None,
            window: None,
            faults,
        }
    }

    /// Counts `bytes` that just arrived; whether the body is coming too slowly.
    fn too_slow(&mut self, bytes: u64) -> bool {
        let now = std::time::Instant::now();
        let (start, received) = self.window.get_or_insert((now, 0));
        *received += bytes;
        if now.duration_since(*start) < self.idle_timeout {
            return false;
        }
        let slow = *received < MIN_BYTES_PER_WINDOW;
        self.window = Some((now, 0));
        slow
    }

    /// Whether the client has kept the guest waiting for its idle timeout.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let timeout = self.idle_timeout;
        let idle = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        idle.as_mut().poll(cx).is_ready()
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.idle = None;
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.faults.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.remaining -= len;
                    if this.too_slow(len) && !this.inner.is_end_stream() {
                        this.faults.stalled.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.stalled(cx) => {
                this.faults.stalled.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
