//! The id of the request an instance serves, and how many in-process hops brought it.
//! Instances may be built before their request arrives, so both are filled in when the
//! request is handed over; logs and outbound HTTP read them from here.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// Shared by everything in one instance that logs on the request's behalf.
#[derive(Clone, Default)]
pub(crate) struct RequestTag(Arc<OnceLock<(Arc<str>, u32)>>);

impl RequestTag {
    /// Records the request id and chain depth; an instance serves one request, so later
    /// calls are ignored.
    pub(crate) fn set(&self, request_id: Arc<str>, chain_depth: u32) {
        let _ = self.0.set((request_id, chain_depth));
    }

    /// In-process hops that brought the request (0 before it is handed over).
    pub(crate) fn chain_depth(&self) -> u32 {
        self.0.get().map_or(0, |(_, depth)| *depth)
    }
}

impl fmt::Display for RequestTag {
    /// The request id, or `-` for output before any request was handed over.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get().map_or("-", |(id, _)| id))
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
}
