//! What a CGI program is told about its request: RFC 3875's meta-variables, Wagi's `X_*`
//! additions and `HTTP_*` for each header, and its arguments from the `argv` template.

use http::header::{CONTENT_TYPE, HOST};
use http::request::Parts;
use std::net::SocketAddr;
use std::sync::Arc;

/// The route a request matched, as the trigger saw it (a request extension).
#[derive(Clone, Debug)]
pub(crate) struct CgiRoute {
    /// The route as written, e.g. `/cgi/...`.
    pub matched_route: Arc<str>,
    /// The route without its wildcard, e.g. `/cgi`: the script's name.
    pub script_name: Arc<str>,
    /// The part of the path the wildcard covered, as sent (percent-encoded).
    pub raw_path_info: String,
    pub client: SocketAddr,
}

/// The server's name for the program: Wagi's.
const SERVER_SOFTWARE: &str = "WAGI/1";

/// Headers not passed on as `HTTP_*`: credentials (RFC 3875 §4.1.18 lets a server withhold
/// them, and Wagi does), the connection's own, and `Proxy` (as `HTTP_PROXY` it would tell
/// many HTTP libraries which proxy to use: "httpoxy").
const WITHHELD: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "connection",
    "proxy",
];

/// The meta-variables for a request with head `parts` on `route`, whose body is
/// `content_length` bytes.
pub(crate) fn meta_variables(
    parts: &Parts,
    route: &CgiRoute,
    content_length: u64,
) -> Vec<(String, String)> {
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let host = header(HOST);
    let (server_name, server_port) = split_host(&host);
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let path_info = percent_encoding::percent_decode_str(&route.raw_path_info)
        .decode_utf8_lossy()
        .into_owned();
    let client_ip = route.client.ip().to_string();
    let mut vars = vec![
        ("AUTH_TYPE", String::new()),
        ("CONTENT_LENGTH", content_length.to_string()),
        ("CONTENT_TYPE", header(CONTENT_TYPE)),
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("PATH_INFO", path_info.clone()),
        ("PATH_TRANSLATED", path_info),
        ("QUERY_STRING", parts.uri.query().unwrap_or("").to_string()),
        ("REMOTE_ADDR", client_ip.clone()),
        ("REMOTE_HOST", client_ip),
        ("REMOTE_USER", String::new()),
        ("REQUEST_METHOD", parts.method.to_string()),
        ("SCRIPT_NAME", route.script_name.to_string()),
        ("SERVER_NAME", server_name.clone()),
        ("SERVER_PORT", server_port.clone()),
        ("SERVER_PROTOCOL", format!("{:?}", parts.version)),
        ("SERVER_SOFTWARE", SERVER_SOFTWARE.to_string()),
        (
            "X_FULL_URL",
            format!(
                "http://{}{path_and_query}",
                if host.is_empty() { "localhost" } else { &host }
            ),
        ),
        ("X_MATCHED_ROUTE", route.matched_route.to_string()),
        ("X_RAW_PATH_INFO", route.raw_path_info.clone()),
        ("X_BASE_PATH", "/".to_string()),
        ("X_RAW_COMPONENT_ROUTE", route.matched_route.to_string()),
        ("X_COMPONENT_ROUTE", route.script_name.to_string()),
        ("X_CLIENT_ADDR", route.client.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect::<Vec<_>>();
    for (name, value) in &parts.headers {
        // `X_Foo` would pose as `X-Foo`'s `HTTP_X_FOO`: names with `_` are dropped, as
        // Apache does.
        if WITHHELD.contains(&name.as_str()) || name.as_str().contains('_') {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let name = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        // A repeated header is one variable, its values joined as HTTP joins them.
        match vars.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => vars.push((name, value.to_string())),
        }
    }
    vars
}

/// The program's arguments: `template` with `${SCRIPT_NAME}` as the request path and
/// `${ARGS}` as the query's `&`-separated parts, split on spaces (Spin's Wagi).
pub(crate) fn argv(template: &str, path: &str, query: Option<&str>) -> Vec<String> {
    let args = query.unwrap_or("").replace('&', " ");
    template
        .replace("${SCRIPT_NAME}", path)
        .replace("${ARGS}", &args)
        .split(' ')
        .filter(|arg| !arg.is_empty())
        .map(str::to_string)
        .collect()
}

/// A `Host` header's name and port (80 when it names none, `localhost` when absent).
fn split_host(host: &str) -> (String, String) {
    let port_of = |tail: &str| {
        tail.strip_prefix(':')
            .filter(|port| port.parse::<u16>().is_ok())
            .unwrap_or("80")
            .to_string()
    };
    if host.is_empty() {
        return ("localhost".into(), "80".into());
    }
    if let Some((address, tail)) = host.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return (format!("[{address}]"), port_of(tail));
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => (name.into(), port.into()),
        _ => (host.into(), "80".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().method("POST").uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn route() -> CgiRoute {
        CgiRoute {
            matched_route: "/cgi/...".into(),
            script_name: "/cgi".into(),
            raw_path_info: "/a%20b/c".into(),
            client: "10.1.2.3:4567".parse().unwrap(),
        }
    }

    fn var<'a>(vars: &'a [(String, String)], name: &str) -> &'a str {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {vars:?}"))
    }

    #[test]
    fn rfc_3875_and_wagi_variables() {
        let parts = parts(
            "/cgi/a%20b/c?x=1&y=2",
            &[
                ("host", "example.com:8080"),
                ("content-type", "text/plain"),
                ("x-thing", "one"),
                ("x-thing", "two"),
                ("authorization", "Bearer secret"),
                ("proxy", "http://evil:8080"),
                ("x_thing", "posing"),
            ],
        );
        let vars = meta_variables(&parts, &route(), 5);
        for (name, value) in [
            ("CONTENT_LENGTH", "5"),
            ("CONTENT_TYPE", "text/plain"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("PATH_INFO", "/a b/c"),
            ("PATH_TRANSLATED", "/a b/c"),
            ("X_RAW_PATH_INFO", "/a%20b/c"),
            ("QUERY_STRING", "x=1&y=2"),
            ("REMOTE_ADDR", "10.1.2.3"),
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/cgi"),
            ("SERVER_NAME", "example.com"),
            ("SERVER_PORT", "8080"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("X_FULL_URL", "http://example.com:8080/cgi/a%20b/c?x=1&y=2"),
            ("X_MATCHED_ROUTE", "/cgi/..."),
            ("HTTP_X_THING", "one, two"),
        ] {
            assert_eq!(var(&vars, name), value, "{name}");
        }
        assert!(!vars.iter().any(|(n, _)| n == "HTTP_AUTHORIZATION"));
        assert!(!vars.iter().any(|(n, _)| n == "HTTP_PROXY"));
    }

    #[test]
    fn hosts_without_ports_and_ipv6() {
        let vars = meta_variables(&parts("/", &[("host", "example.com")]), &route(), 0);
        assert_eq!(
            (var(&vars, "SERVER_NAME"), var(&vars, "SERVER_PORT")),
            ("example.com", "80")
        );
        let vars = meta_variables(&parts("/", &[("host", "[::1]:3000")]), &route(), 0);
        assert_eq!(
            (var(&vars, "SERVER_NAME"), var(&vars, "SERVER_PORT")),
            ("[::1]", "3000")
        );
        let vars = meta_variables(&parts("/", &[("host", "[::1]")]), &route(), 0);
        assert_eq!(
            (var(&vars, "SERVER_NAME"), var(&vars, "SERVER_PORT")),
            ("[::1]", "80")
        );
    }

    #[test]
    fn argv_from_the_template() {
        assert_eq!(
            argv("${SCRIPT_NAME} ${ARGS}", "/cgi/x", Some("a=1&b")),
            ["/cgi/x", "a=1", "b"]
        );
        assert_eq!(argv("${SCRIPT_NAME} ${ARGS}", "/", None), ["/"]);
        assert_eq!(argv("prog --flag", "/", Some("q")), ["prog", "--flag"]);
    }
}
