//! A response body that ends cleanly only if the guest's handler finished without a trap
//! or deadline; otherwise it ends with an error so the client sees a broken response.

use crate::wasi_http::HandlerOutcome;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::Error as HttpError;

pub(crate) struct GuardedBody {
    inner: HyperOutgoingBody,
    /// Resolves to how the handler ended.
    handler_outcome: Option<oneshot::Receiver<HandlerOutcome>>,
}

impl GuardedBody {
    pub(crate) fn new(
        inner: HyperOutgoingBody,
        handler_outcome: oneshot::Receiver<HandlerOutcome>,
    ) -> Self {
        GuardedBody {
            inner,
            handler_outcome: Some(handler_outcome),
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                let Some(receiver) = self.handler_outcome.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(receiver).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(outcome) => {
                        self.handler_outcome = None;
                        if matches!(outcome, Ok(Ok(()))) {
                            Poll::Ready(None)
                        } else {
                            Poll::Ready(Some(Err(HttpError::HttpResponseIncomplete)))
                        }
                    }
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.handler_outcome.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A WASI 0.3 response body, which may outlive the instance (a guest can hand over a body
/// the host streams, such as an outbound response's): it ends with an error at the
/// request's deadline, dropping what it streams from.
pub(crate) struct DeadlineBody {
    inner: Option<HyperOutgoingBody>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    pub(crate) fn new(inner: HyperOutgoingBody, deadline: std::time::Instant) -> Self {
        DeadlineBody {
            inner: Some(inner),
            deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.inner.is_none() {
            return Poll::Ready(None);
        }
        // First, so that a body always ready with more cannot run past it.
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.inner = None;
            return Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)));
        }
        let inner = self.inner.as_mut().expect("checked above");
        let frame = std::task::ready!(Pin::new(inner).poll_frame(cx));
        if frame.is_none() {
            self.inner = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |inner| inner.size_hint())
    }
}
