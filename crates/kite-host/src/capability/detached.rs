//! Statements of Spin 4's async database calls run on a task of their own: a guest that
//! cancels a call only stops waiting for it. The statement still runs to its end (at the
//! latest the request's deadline), holding its connection and its counted bytes till then.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a statement may run when no request deadline is known.
const WITHOUT_DEADLINE: Duration = Duration::from_secs(60);

/// What a detached statement costs the host besides its text and parameters (its task,
/// its place in a client's queue), counted so that a guest cannot start them without end.
pub(crate) const STATEMENT_OVERHEAD: usize = 4 << 10;

/// Runs `work` on its own task until it ends or `deadline` passes; the error says which of
/// those did not happen.
pub(crate) async fn run_detached<F>(
    deadline: Option<Instant>,
    work: F,
) -> Result<F::Output, &'static str>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let deadline = deadline.unwrap_or_else(|| Instant::now() + WITHOUT_DEADLINE);
    let task = tokio::spawn(tokio::time::timeout_at(deadline.into(), work));
    match task.await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(_)) => Err("the statement did not end before the request's deadline"),
        Err(_) => Err("the statement failed in the host"),
    }
}
