//! The request headers Spin gives a guest about its route (`spin-full-url`,
//! `spin-path-info`, `spin-path-match-<name>`, ...), with Spin's values. What depends only
//! on the route is made once, when the trigger is built.

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use kite_app::{RouteMatch, RoutePattern};
use std::fmt::Write;
use std::net::SocketAddr;

const PREFIX: &str = "spin-";

/// One route's headers whose values never change, and the names of its parameters'
/// `spin-path-match-<name>` headers, in the order a match lists the parameters.
pub(crate) struct RouteHeaders {
    matched: HeaderValue,
    raw: HeaderValue,
    component: HeaderValue,
    path_match: Vec<Option<HeaderName>>,
}

impl RouteHeaders {
    pub(crate) fn new(pattern: &RoutePattern) -> Self {
        let value =
            |text: &str| HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""));
        let path_match = pattern
            .param_names()
            .map(|name| {
                let name = format!(
                    "{PREFIX}path-match-{}",
                    name.to_ascii_lowercase().replace('_', "-")
                );
                HeaderName::from_bytes(name.as_bytes()).ok()
            })
            .collect();
        RouteHeaders {
            matched: value(&pattern.matched_route()),
            raw: value(pattern.as_str()),
            component: value(pattern.component_route()),
            path_match,
        }
    }
}

/// Replaces whatever `spin-*` headers the client sent (a guest trusting `spin-client-addr`
/// must not be fooled) with Spin's values for this request and route.
pub(crate) fn set<B>(
    request: &mut Request<B>,
    route: &RouteHeaders,
    found: &RouteMatch<'_>,
    client: SocketAddr,
) {
    let mut full_url = String::with_capacity(64);
    full_url.push_str("http://");
    match request.headers().get(HOST).map(HeaderValue::to_str) {
        Some(Ok(host)) => full_url.push_str(host),
        _ => full_url.push_str("localhost"),
    }
    full_url.push_str(request.uri().path_and_query().map_or("/", |p| p.as_str()));
    let mut client_text = String::with_capacity(24);
    let _ = write!(client_text, "{client}");

    let headers = request.headers_mut();
    remove_spin_headers(headers);
    headers.reserve(7 + found.params.len());
    let mut put = |name: &'static str, value: HeaderValue| {
        headers.append(HeaderName::from_static(name), value);
    };
    if let Ok(info) = HeaderValue::from_str(found.tail) {
        put("spin-path-info", info);
    }
    if let Ok(url) = HeaderValue::try_from(full_url) {
        put("spin-full-url", url);
    }
    put("spin-matched-route", route.matched.clone());
    put("spin-base-path", HeaderValue::from_static("/"));
    put("spin-raw-component-route", route.raw.clone());
    put("spin-component-route", route.component.clone());
    if let Ok(client) = HeaderValue::try_from(client_text) {
        put("spin-client-addr", client);
    }
    for (name, (_, value)) in route.path_match.iter().zip(&found.params) {
        if let (Some(name), Ok(value)) = (name, HeaderValue::from_str(value)) {
            headers.append(name.clone(), value);
        }
    }
}

fn remove_spin_headers(headers: &mut HeaderMap) {
    if !headers.keys().any(|name| name.as_str().starts_with(PREFIX)) {
        return;
    }
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}
