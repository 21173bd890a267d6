//! What a request that did not get a guest response turns into: how the guest failed,
//! the line logged for it, and the plain-text error response with the request id.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::{PoolConcurrencyLimitError, Trap};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub(crate) const REQUEST_ID_HEADER: &str = "x-kite-request-id";

/// Why a guest's handler did not finish normally.
pub(crate) enum GuestFailure {
    Deadline(Duration),
    /// Every instance slot is in use (`--max-instances`).
    Overloaded,
    Trap(wasmtime::Error),
    /// A program (Wagi) exited with this non-zero status.
    Exit(i32),
    /// The request body failed (too large, stalled) while a program read it; stopped.
    BodyFailed,
    /// Nobody waited for the response any more (the client went away); stopped.
    Abandoned,
}

/// How often a trigger's guests failed, by kind (for metrics).
#[derive(Debug, Default)]
pub struct FailureCounts {
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    /// Requests refused because every instance slot was in use.
    pub overloaded: AtomicU64,
}

impl GuestFailure {
    /// Logs the failure and counts it in `counts`.
    pub(crate) fn report(&self, component: &str, request_id: &str, counts: &FailureCounts) {
        let counter = match self {
            GuestFailure::Deadline(_) => Some(&counts.timeouts),
            GuestFailure::Overloaded => Some(&counts.overloaded),
            GuestFailure::Trap(_) | GuestFailure::Exit(_) => Some(&counts.traps),
            GuestFailure::BodyFailed | GuestFailure::Abandoned => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.log(component, request_id);
    }

    /// Classifies an error from instantiating or running the guest.
    pub(crate) fn from_error(error: wasmtime::Error, timeout: Duration) -> Self {
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            GuestFailure::Exit(exit.0)
        } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            GuestFailure::Deadline(timeout)
        } else if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
            GuestFailure::Overloaded
        } else {
            GuestFailure::Trap(error)
        }
    }

    fn log(&self, component: &str, request_id: &str) {
        match self {
            GuestFailure::Deadline(timeout) => tracing::error!(
                component = %component, request_id = %request_id,
                "the component ran past its {} deadline and was stopped",
                display_duration(*timeout)
            ),
            GuestFailure::Overloaded => tracing::warn!(
                component = %component, request_id = %request_id,
                "no free instance slot (all --max-instances are busy); answered 503"
            ),
            GuestFailure::Trap(e) => tracing::error!(
                component = %component, request_id = %request_id,
                "the component trapped: {e:?}"
            ),
            GuestFailure::Exit(status) => tracing::error!(
                component = %component, request_id = %request_id,
                "the program exited with status {status}"
            ),
            GuestFailure::BodyFailed => tracing::warn!(
                component = %component, request_id = %request_id,
                "the request body failed while the program read it; the program was stopped"
            ),
            GuestFailure::Abandoned => tracing::info!(
                component = %component, request_id = %request_id,
                "the client went away; the program was stopped"
            ),
        }
    }

    pub(crate) fn response(&self, request_id: &str) -> Response<HyperOutgoingBody> {
        match self {
            GuestFailure::Deadline(timeout) => error_response(
                StatusCode::GATEWAY_TIMEOUT,
                request_id,
                &format!(
                    "the component did not respond within its {} deadline",
                    display_duration(*timeout)
                ),
            ),
            GuestFailure::Overloaded => busy_response(
                request_id,
                "the server is at its instance limit; retry shortly",
            ),
            GuestFailure::Trap(_)
            | GuestFailure::Exit(_)
            | GuestFailure::BodyFailed
            | GuestFailure::Abandoned => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                "the component failed while handling the request",
            ),
        }
    }
}

fn display_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// 503 with `Retry-After: 1`: no capacity right now, nothing wrong with the request.
pub(crate) fn busy_response(request_id: &str, message: &str) -> Response<HyperOutgoingBody> {
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, request_id, message);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A plain-text error response carrying the request id, in the body and a header.
pub(crate) fn error_response(
    status: StatusCode,
    request_id: &str,
    message: &str,
) -> Response<HyperOutgoingBody> {
    let text = format!(
        "{} {}: {message} (request id {request_id})\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    set_request_id(&mut response, request_id);
    response
}

pub(crate) fn set_request_id<B>(response: &mut Response<B>, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
}
