//! The id of the request an instance serves. Instances may be built before their request
//! arrives, so the id is filled in when the request is handed over; logs read it from here.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// Shared by everything in one instance that logs on the request's behalf.
#[derive(Clone, Default)]
pub(crate) struct RequestTag(Arc<OnceLock<Arc<str>>>);

impl RequestTag {
    /// Records the request id; an instance serves one request, so later calls are ignored.
    pub(crate) fn set(&self, request_id: Arc<str>) {
        let _ = self.0.set(request_id);
    }
}

impl fmt::Display for RequestTag {
    /// The request id, or `-` for output before any request was handed over.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get().map_or("-", |id| id))
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
        tag.set("a-1".into());
        tag.set("a-2".into());
        assert_eq!(clone.to_string(), "a-1");
    }
}
