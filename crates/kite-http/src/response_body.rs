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
