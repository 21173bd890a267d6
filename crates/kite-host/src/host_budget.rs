//! The host memory one instance may make the host hold (`limits.host_memory`), turned into
//! the bounds Wasmtime enforces: resource-table entries, bytes per header map, body chunks.

use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::WasiHttpCtx;

/// The largest header map (`fields`) a guest may build: names and values together.
pub const MAX_FIELDS_BYTES: usize = 32 << 10;
/// The largest write into an outgoing body; one more chunk may wait to be sent, so a body
/// holds at most two.
pub const BODY_CHUNK_BYTES: usize = 16 << 10;
/// The most any one host resource can hold: a full header map, or a body's two chunks.
const MAX_BYTES_PER_RESOURCE: u64 = if MAX_FIELDS_BYTES > 2 * BODY_CHUNK_BYTES {
    MAX_FIELDS_BYTES as u64
} else {
    2 * BODY_CHUNK_BYTES as u64
};
/// The most a guest may pass the host in one call (lists, strings): a little over the
/// largest value any interface takes (a 32 MiB SQLite value), so that one call cannot make
/// the host lift hundreds of megabytes (Wasmtime's default is 128 MiB).
pub const MAX_BYTES_PER_HOST_CALL: usize = 40 << 20;
/// Even a small budget leaves room for the resources every request needs.
const MIN_RESOURCES: usize = 256;

/// How many host resources (header maps, bodies, streams, store handles, ...) an instance
/// may hold at once so that together they stay within `host_memory` bytes.
pub fn max_resources(host_memory: u64) -> usize {
    usize::try_from(host_memory / MAX_BYTES_PER_RESOURCE)
        .unwrap_or(usize::MAX)
        .max(MIN_RESOURCES)
}

pub(crate) fn resource_table(max_resources: usize) -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(max_resources);
    table
}

pub(crate) fn http_context() -> WasiHttpCtx {
    let mut http = WasiHttpCtx::new();
    http.set_field_size_limit(MAX_FIELDS_BYTES);
    http
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_budget_allows_2048_resources() {
        assert_eq!(super::max_resources(64 << 20), 2048);
        assert_eq!(super::max_resources(1 << 20), 256);
    }
}
