//! What every request to a component goes through whatever its executor: the body-size
//! limit, the concurrency limit, the body's idle timeout, and failures turned into statuses.

use crate::body_limit::{BodyFaults, LimitedBody, MIN_BYTES_PER_WINDOW};
use crate::executor::{Executor, Outcome};
use crate::failure::{busy_response, error_response};
use crate::trigger::RequestBody;
use http::{Request, Response, StatusCode};
use kite_app::Limits;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub(crate) struct ComponentGate {
    component: Arc<str>,
    limits: Limits,
    /// Present when the manifest sets `limits.max_concurrency`.
    concurrency: Option<Arc<Semaphore>>,
    executor: Box<dyn Executor>,
}

impl ComponentGate {
    /// A gate around `executor`; `concurrency` holds the component's places when
    /// `limits.max_concurrency` is set (shared by every gate of the component).
    pub(crate) fn new(
        component: &str,
        limits: Limits,
        concurrency: Option<Arc<Semaphore>>,
        executor: Box<dyn Executor>,
    ) -> Self {
        ComponentGate {
            component: component.into(),
            limits,
            concurrency,
            executor,
        }
    }

    /// The places `limits.max_concurrency` gives a component, if it sets one.
    pub(crate) fn concurrency_for(limits: &Limits) -> Option<Arc<Semaphore>> {
        limits
            .max_concurrency
            .map(|n| Arc::new(Semaphore::new(n as usize)))
    }

    pub(crate) fn component(&self) -> &Arc<str> {
        &self.component
    }

    /// Runs one request through the executor. A request body that stalls for `body_idle`
    /// while the guest waits for it fails the guest's read, and the request gets 408.
    pub(crate) async fn handle(
        &self,
        req: Request<RequestBody>,
        request_id: &Arc<str>,
        body_idle: Duration,
    ) -> Response<HyperOutgoingBody> {
        let declared_length = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|len| len > self.limits.max_request_body) {
            return self.too_large(request_id);
        }
        let permit = match &self.concurrency {
            None => None,
            Some(semaphore) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(component = %self.component, request_id = %request_id, "at its max_concurrency; answered 503");
                    return busy_response(
                        request_id,
                        "this component is at its `limits.max_concurrency`; retry shortly",
                    );
                }
            },
        };
        let faults = Arc::new(BodyFaults::default());
        let limit = self.limits.max_request_body;
        let req = req.map(|body| LimitedBody::new(body, limit, body_idle, faults.clone()));
        let failure = match self.executor.execute(req, request_id, permit).await {
            Outcome::Response(response) => return response,
            Outcome::Failed(failure) => failure,
        };
        if faults.too_large.load(Ordering::Relaxed) {
            return self.too_large(request_id);
        }
        if faults.stalled.load(Ordering::Relaxed) {
            tracing::warn!(component = %self.component, request_id = %request_id, "the request body stalled (no bytes for {body_idle:?}, or under {MIN_BYTES_PER_WINDOW} bytes in that time); answered 408");
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                request_id,
                &format!("the request body stalled (no bytes for {body_idle:?}, or under {MIN_BYTES_PER_WINDOW} bytes in that time)"),
            );
        }
        match failure {
            Some(failure) => failure.response(request_id),
            None => error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                "the component failed to produce a response",
            ),
        }
    }

    fn too_large(&self, request_id: &str) -> Response<HyperOutgoingBody> {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            request_id,
            &format!(
                "the request body is larger than this component's limit of {} bytes (`limits.max_request_body`)",
                self.limits.max_request_body
            ),
        )
    }
}
