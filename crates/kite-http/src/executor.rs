//! The executor seam: one kind of guest (a wasi:http component; later a CGI program) run
//! for one request in a fresh instance. Everything else about a request lives outside it.

use crate::body_limit::LimitedBody;
use crate::failure::GuestFailure;
use crate::trigger::RequestBody;
use http::{Request, Response};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The request as an executor receives it: its body bounded in size and rate.
pub(crate) type GuestRequest = Request<LimitedBody<RequestBody>>;

/// What running a request produced.
pub(crate) enum Outcome {
    /// The response to send: the guest's (its body may still fail while it streams), or an
    /// error response the executor made because the guest could not be run.
    Response(Response<HyperOutgoingBody>),
    /// No response, and why if known (already logged).
    Failed(Option<GuestFailure>),
}

/// Kept alive by the executor until the request's instance is gone (a concurrency permit).
pub(crate) type InstanceHold = Option<OwnedSemaphorePermit>;

#[async_trait::async_trait]
pub(crate) trait Executor: Send + Sync {
    /// Runs `request` in a fresh instance.
    async fn execute(
        &self,
        request: GuestRequest,
        request_id: &Arc<str>,
        hold: InstanceHold,
    ) -> Outcome;
}
