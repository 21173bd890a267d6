//! Statements of Spin 4's async database calls run on a task of their own: a guest that
//! cancels a call only stops waiting for it. The statement still runs to its end (at the
//! latest the request's deadline), holding its connection and its counted bytes till then.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a statement may run when no request deadline is known.
const WITHOUT_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `work` on its own task until it ends or `deadline` passes (`None`: it did not end).
pub(crate) async fn run_detached<F>(deadline: Option<Instant>, work: F) -> Option<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let deadline = deadline.unwrap_or_else(|| Instant::now() + WITHOUT_DEADLINE);
    let task = tokio::spawn(tokio::time::timeout_at(deadline.into(), work));
    task.await.ok().and_then(Result::ok)
}

/// What a guest is told when its statement outlived the request.
pub(crate) const PAST_DEADLINE: &str = "the statement did not end before the request's deadline";
