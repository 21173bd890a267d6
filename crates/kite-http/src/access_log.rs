//! The one log line per request, written after the response has gone out: each worker
//! thread queues its requests' records and one task of its own formats and writes them.

use http::{Method, StatusCode, Uri};
use std::cell::RefCell;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// What is logged about one request.
pub(crate) struct AccessRecord {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) status: StatusCode,
    pub(crate) elapsed: Duration,
    /// `None` when no route matched.
    pub(crate) component: Option<Arc<str>>,
    pub(crate) request_id: Arc<str>,
}

impl AccessRecord {
    fn write(self) {
        tracing::info!(
            target: "kite::request",
            component = %self.component.as_deref().unwrap_or("-"),
            request_id = %self.request_id,
            "{} {} {} {:.2}ms",
            self.method,
            self.uri.path_and_query().map_or("/", |p| p.as_str()),
            self.status.as_u16(),
            self.elapsed.as_secs_f64() * 1000.0,
        );
    }
}

#[derive(Default)]
struct Queue {
    records: Vec<AccessRecord>,
    /// The worker's writer task, while it waits for records.
    writer: Option<Waker>,
    /// Whether this thread runs a writer task at all.
    has_writer: bool,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::default();
}

/// Logs `record` once the current task yields (on a worker thread), or now (elsewhere, or
/// when the access log is filtered out).
pub(crate) fn log(record: AccessRecord) {
    if !tracing::enabled!(target: "kite::request", tracing::Level::INFO) {
        return;
    }
    let record = QUEUE.with_borrow_mut(|queue| {
        if !queue.has_writer {
            return Some(record);
        }
        queue.records.push(record);
        if let Some(writer) = queue.writer.take() {
            writer.wake();
        }
        None
    });
    if let Some(record) = record {
        record.write();
    }
}

/// Writes this thread's queued records as they come; runs for the life of the worker.
/// Records still queued when the task is dropped are written then.
pub(crate) async fn write_queued_records() {
    struct FlushOnDrop;
    impl Drop for FlushOnDrop {
        fn drop(&mut self) {
            QUEUE.with_borrow_mut(|queue| queue.has_writer = false);
            let queued = QUEUE.with_borrow_mut(|queue| std::mem::take(&mut queue.records));
            for record in queued {
                record.write();
            }
        }
    }
    QUEUE.with_borrow_mut(|queue| queue.has_writer = true);
    let _flush = FlushOnDrop;
    let mut batch = Vec::new();
    loop {
        poll_fn(|cx| {
            QUEUE.with_borrow_mut(|queue| {
                if queue.records.is_empty() {
                    queue.writer = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    std::mem::swap(&mut queue.records, &mut batch);
                    Poll::Ready(())
                }
            })
        })
        .await;
        for record in batch.drain(..) {
            record.write();
        }
    }
}
