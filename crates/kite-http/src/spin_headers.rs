//! The request headers Spin gives a guest about its route (`spin-full-url`,
//! `spin-path-info`, `spin-path-match-<name>`, ...), with Spin's values.

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use kite_app::{RouteMatch, RoutePattern};
use std::net::SocketAddr;

const PREFIX: &str = "spin-";

/// Replaces whatever `spin-*` headers the client sent (a guest trusting `spin-client-addr`
/// must not be fooled) with Spin's values for this request and route.
pub(crate) fn set<B>(
    request: &mut Request<B>,
    pattern: &RoutePattern,
    found: &RouteMatch<'_>,
    client: SocketAddr,
) {
    let full_url = {
        let host = request
            .headers()
            .get(HOST)
            .map_or(&b"localhost"[..], HeaderValue::as_bytes);
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes();
        [b"http://", host, path].concat()
    };
    let headers = request.headers_mut();
    remove_spin_headers(headers);
    let mut put = |name: &'static str, value: &[u8]| {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(HeaderName::from_static(name), value);
        }
    };
    put("spin-path-info", found.tail.as_bytes());
    put("spin-full-url", &full_url);
    put("spin-matched-route", pattern.matched_route().as_bytes());
    put("spin-base-path", b"/");
    put("spin-raw-component-route", pattern.as_str().as_bytes());
    put("spin-component-route", pattern.component_route().as_bytes());
    put("spin-client-addr", client.to_string().as_bytes());
    for (name, value) in &found.params {
        let name = format!(
            "{PREFIX}path-match-{}",
            name.to_ascii_lowercase().replace('_', "-")
        );
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
}

fn remove_spin_headers(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}
