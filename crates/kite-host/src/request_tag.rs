//! The id of the request an instance serves, how many in-process hops brought it, and how
//! many of Kite's refusals it has logged. Instances may be built before their request
//! arrives, so id and depth are filled in when the request is handed over; logs and
//! outbound clients read them from here.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// How many of Kite's refusals (outbound requests and connections denied) one request may
/// log; the last says that further ones are not.
const LOGGED_REFUSALS: u32 = 16;

/// Shared by everything in one instance that logs on the request's behalf.
#[derive(Clone, Default)]
pub(crate) struct RequestTag(Arc<Tag>);

#[derive(Default)]
struct Tag {
    id_and_depth: OnceLock<(Arc<str>, u32)>,
    refusals: AtomicU32,
}

/// Whether a refusal may be logged.
#[derive(Debug, PartialEq)]
pub(crate) enum RefusalLine {
    Log,
    /// Log it, saying that further refusals of the request are not logged.
    LogLast,
    Skip,
}

impl RequestTag {
    /// Records the request id and chain depth; an instance serves one request, so later
    /// calls are ignored.
    pub(crate) fn set(&self, request_id: Arc<str>, chain_depth: u32) {
        let _ = self.0.id_and_depth.set((request_id, chain_depth));
    }

    /// In-process hops that brought the request (0 before it is handed over).
    pub(crate) fn chain_depth(&self) -> u32 {
        self.0.id_and_depth.get().map_or(0, |(_, depth)| *depth)
    }

    /// Counts one more refusal of this request: whether it may still be logged. A guest
    /// that is refused in a loop cannot fill the host's log.
    pub(crate) fn refusal(&self) -> RefusalLine {
        match self.0.refusals.fetch_add(1, Ordering::Relaxed) {
            n if n + 1 < LOGGED_REFUSALS => RefusalLine::Log,
            n if n + 1 == LOGGED_REFUSALS => RefusalLine::LogLast,
            _ => RefusalLine::Skip,
        }
    }
}

impl RefusalLine {
    /// What to add to the reason in the log line.
    pub(crate) fn suffix(&self) -> &'static str {
        match self {
            RefusalLine::LogLast => "; further refusals of this request are not logged",
            _ => "",
        }
    }
}

impl fmt::Display for RequestTag {
    /// The request id, or `-` for output before any request was handed over.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.id_and_depth.get().map_or("-", |(id, _)| id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_first_id_set_on_any_clone() {
        let tag = RequestTag::default();
        let clone = tag.clone();
        assert_eq!(clone.to_string(), "-");
        tag.set("a-1".into(), 2);
        tag.set("a-2".into(), 3);
        assert_eq!(clone.to_string(), "a-1");
        assert_eq!(clone.chain_depth(), 2);
    }

    #[test]
    fn a_request_logs_a_bounded_number_of_refusals() {
        let tag = RequestTag::default();
        let clone = tag.clone();
        let seen: Vec<RefusalLine> = (0..LOGGED_REFUSALS + 2)
            .map(|i| {
                if i % 2 == 0 {
                    tag.refusal()
                } else {
                    clone.refusal()
                }
            })
            .collect();
        assert!(seen[..LOGGED_REFUSALS as usize - 1]
            .iter()
            .all(|log| *log == RefusalLine::Log));
        assert_eq!(seen[LOGGED_REFUSALS as usize - 1], RefusalLine::LogLast);
        assert_eq!(
            seen[LOGGED_REFUSALS as usize..],
            [RefusalLine::Skip, RefusalLine::Skip]
        );
    }
}
