//! `allowed_outbound_hosts` rules in Spin's syntax: `scheme://host[:port]` with `*`
//! wildcards, `*.domain`, IP addresses and CIDR ranges, `self`, port ranges and each scheme's
//! default port. Anything no rule allows is denied.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// One allowed destination pattern, e.g. `https://*.example.com`, `postgres://10.0.0.0/8`
/// or `http://127.0.0.1:8000..9000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRule {
    text: String,
    /// `None` means any scheme (`*://`).
    scheme: Option<String>,
    host: HostMatch,
    port: PortMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    /// A name (lowercase) or an IP address.
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Subdomains(String),
    /// A CIDR range: IP addresses in it (never names).
    Network(IpNet),
    /// `self`: requests to the app itself (relative URLs), never a real host.
    ToSelf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortMatch {
    Any,
    Exact(u16),
    /// `start..end`: `end` excluded, as Spin reads it.
    Range(u16, u16),
}

const RULE_HELP: &str =
    "expected `scheme://host[:port]`, e.g. \"https://api.example.com\", \"https://*.example.com\", \"postgres://10.0.0.0/8\" or \"http://127.0.0.1:*\"";

impl OutboundRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid outbound host {text:?}: {why}; {RULE_HELP}");
        if text.contains("{{") {
            return Err(bad(
                "a `{{ variable }}` template is resolved when the app starts, not here",
            ));
        }
        let trimmed = text.trim();
        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| bad("missing scheme (use `*://` for any)"))?;
        let scheme = match scheme {
            "*" => None,
            s if s.starts_with('{') => return Err(bad("scheme lists are not supported")),
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            _ => return Err(bad("the scheme may only contain letters")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('?') || rest.contains('@') || rest.contains('#') {
            return Err(bad("a rule names a host, not a query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("malformed host or port"))?;
        let port = match port {
            None => match scheme.as_deref().and_then(default_port) {
                Some(port) => PortMatch::Exact(port),
                None => {
                    return Err(bad(&format!(
                        "no port given, and {} has no default port (add `:*` or a port)",
                        scheme.map_or("scheme `*`".to_string(), |s| format!("scheme `{s}`"))
                    )))
                }
            },
            Some(port) => parse_port(port).map_err(|why| bad(&why))?,
        };
        let host = parse_host(host).map_err(|why| bad(&why))?;
        Ok(OutboundRule {
            text: text.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this rule. `host` is a name or
    /// an IP address (IPv6 with or without brackets).
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self
            .scheme
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case(scheme))
        {
            return false;
        }
        let port_ok = self.allows_port(port);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let address = host.parse::<IpAddr>().ok();
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(exact) => match (exact.parse::<IpAddr>(), address) {
                (Ok(rule), Some(request)) => rule == request,
                _ => exact.eq_ignore_ascii_case(host),
            },
            HostMatch::Subdomains(suffix) => {
                address.is_none()
                    && host.len() > suffix.len() + 1
                    && host.to_ascii_lowercase().ends_with(&format!(".{suffix}"))
            }
            HostMatch::Network(network) => address.is_some_and(|a| network.contains(&a)),
            HostMatch::ToSelf => false,
        };
        port_ok && host_ok
    }

    /// Whether the rule is for `scheme` (or for any scheme).
    pub fn covers_scheme(&self, scheme: &str) -> bool {
        self.scheme
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(scheme))
    }

    /// The host name the rule names, if it names one (not an address, range or wildcard).
    pub fn host_name(&self) -> Option<&str> {
        match &self.host {
            HostMatch::Exact(host) if host.parse::<IpAddr>().is_err() => Some(host),
            _ => None,
        }
    }

    pub fn allows_port(&self, port: u16) -> bool {
        match self.port {
            PortMatch::Any => true,
            PortMatch::Exact(p) => p == port,
            PortMatch::Range(start, end) => (start..end).contains(&port),
        }
    }

    /// Whether this rule allows requests to the app itself (`self`, or any host).
    pub fn allows_self(&self) -> bool {
        matches!(self.host, HostMatch::ToSelf | HostMatch::Any)
            && self
                .scheme
                .as_deref()
                .is_none_or(|s| s == "http" || s == "https")
    }

    /// The narrowest rule that would allow a request to `scheme://host:port`, for error hints.
    pub fn suggestion(scheme: &str, host: &str, port: u16) -> String {
        let host = match host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => format!("[{v6}]"),
            Err(_) => host.to_string(),
        };
        if default_port(scheme) == Some(port) {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The port a scheme's URLs use when they name none (Spin's list, and `rediss`).
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" | "rediss" => Some(6379),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "mqtt" => Some(1883),
        _ => None,
    }
}

fn parse_port(port: &str) -> Result<PortMatch, String> {
    if port == "*" {
        return Ok(PortMatch::Any);
    }
    if port.starts_with('{') {
        return Err("port lists are not supported".into());
    }
    let number = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("port {text:?} is not a number from 0 to 65535"))
    };
    match port.split_once("..") {
        Some((start, end)) => {
            let (start, end) = (number(start)?, number(end)?);
            if start >= end {
                return Err(format!(
                    "port range {port:?} is empty (the end is excluded)"
                ));
            }
            Ok(PortMatch::Range(start, end))
        }
        None => number(port).map(PortMatch::Exact),
    }
}

fn parse_host(host: &str) -> Result<HostMatch, String> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostMatch::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostMatch::ToSelf);
    }
    if host.starts_with('{') {
        return Err("host lists are not supported".into());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains('/') {
        let (address, prefix) = bare
            .split_once('/')
            .map(|(a, p)| (a.trim_end_matches(']'), p))
            .unwrap_or((bare, ""));
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{host:?} is not a CIDR range (a host has no path)"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{host:?} has no valid prefix length"))?;
        let network = IpNet::new(address, prefix)
            .map_err(|_| format!("{host:?} has a prefix length too long for its address"))?;
        return Ok(HostMatch::Network(network.trunc()));
    }
    if let Ok(address) = bare.parse::<IpAddr>() {
        if address.is_ipv6() && !host.starts_with('[') {
            return Err(format!(
                "write the IPv6 address {host:?} in brackets: [{host}]"
            ));
        }
        return Ok(HostMatch::Exact(address.to_string()));
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.contains('*') {
            return Err("wildcards are allowed only as a leading `*.`".into());
        }
        if suffix.parse::<IpAddr>().is_ok() {
            return Err("a `*.` wildcard needs a domain, not an address".into());
        }
        check_host_name(suffix)?;
        return Ok(HostMatch::Subdomains(suffix.to_ascii_lowercase()));
    }
    if host.contains('*') {
        return Err("wildcards are allowed only as a whole host `*` or a leading `*.`".into());
    }
    check_host_name(host)?;
    Ok(HostMatch::Exact(host.to_ascii_lowercase()))
}

fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        // `[fd00::]/8` and `[fd00::]/8:443`: the prefix belongs to the host.
        let (host, rest) = match rest.strip_prefix('/') {
            Some(after) => {
                let digits = after.find(':').unwrap_or(after.len());
                (&authority[..end + 2 + digits], &after[digits..])
            }
            None => (host, rest),
        };
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.is_empty() => Some((host, Some(port))),
        Some(_) => None,
        None if !authority.is_empty() => Some((authority, None)),
        None => None,
    }
}

fn check_host_name(host: &str) -> Result<(), String> {
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if host.len() > 253 || !host.split('.').all(valid_label) {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> OutboundRule {
        OutboundRule::parse(text).unwrap()
    }

    #[test]
    fn exact_host_uses_the_scheme_default_port() {
        let r = rule("https://api.example.com");
        assert!(r.allows("https", "api.example.com", 443));
        assert!(r.allows("https", "API.example.com", 443));
        assert!(!r.allows("https", "api.example.com", 8443));
        assert!(!r.allows("http", "api.example.com", 80));
        assert!(!r.allows("https", "evil.com", 443));
    }

    #[test]
    fn wildcards() {
        let r = rule("http://127.0.0.1:*");
        assert!(r.allows("http", "127.0.0.1", 1234));
        assert!(!r.allows("http", "127.0.0.2", 1234));
        let r = rule("*://*.example.com:8080");
        assert!(r.allows("http", "a.example.com", 8080));
        assert!(r.allows("https", "a.b.example.com", 8080));
        assert!(!r.allows("https", "example.com", 8080));
        assert!(!r.allows("https", "badexample.com", 8080));
        let r = rule("https://*:*");
        assert!(r.allows("https", "anything", 1));
        let r = rule("http://[::1]:3000");
        assert!(r.allows("http", "[::1]", 3000));
        assert!(r.allows("http", "::1", 3000));
        assert!(r.allows("http", "0:0::1", 3000));
    }

    #[test]
    fn spins_forms() {
        let r = rule("postgres://db.internal");
        assert!(r.allows("postgres", "db.internal", 5432));
        assert!(!r.allows("postgres", "db.internal", 5433));
        let r = rule("redis://10.0.0.0/8:*");
        assert!(r.allows("redis", "10.1.2.3", 7000));
        assert!(!r.allows("redis", "11.0.0.1", 7000));
        assert!(!r.allows("redis", "ten.example.com", 7000));
        let r = rule("mysql://192.168.1.77/24");
        assert!(r.allows("mysql", "192.168.1.5", 3306));
        let r = rule("tcp://127.0.0.1:8000..9000");
        assert!(r.allows("tcp", "127.0.0.1", 8000));
        assert!(r.allows("tcp", "127.0.0.1", 8999));
        assert!(!r.allows("tcp", "127.0.0.1", 9000));
        let r = rule("*://[fd00::]/8:443");
        assert!(r.allows("https", "[fd12::1]", 443));
        assert!(rule("http://self").allows_self());
        assert!(!rule("http://self").allows("http", "self", 80));
        assert!(rule("*://*:*").allows_self());
        assert!(!rule("https://a.com").allows_self());
        let r = rule("http://*.spin.internal");
        assert!(r.allows("http", "api.spin.internal", 80));
        assert!(rule("mqtt://broker").allows("mqtt", "broker", 1883));
        assert!(rule("http://127.0.0.1").allows("http", "127.0.0.1", 80));
    }

    #[test]
    fn bad_rules_say_what_is_expected() {
        for bad in [
            "api.example.com",
            "f1p://x.com",
            "https://x.com/path",
            "https://x.com:port",
            "https://ex*ample.com",
            "https://",
            "https://x.com:99999",
            "*://x.com",
            "tcp://x.com",
            "http://x.com:9000..8000",
            "http://{a,b}.com",
            "http://*.10.0.0.1",
            "http://{{ host }}",
        ] {
            let err = OutboundRule::parse(bad).unwrap_err();
            assert!(err.contains("scheme://host[:port]"), "{bad}: {err}");
        }
    }

    #[test]
    fn suggestions_omit_default_ports() {
        assert_eq!(
            OutboundRule::suggestion("https", "a.com", 443),
            "https://a.com"
        );
        assert_eq!(
            OutboundRule::suggestion("http", "a.com", 8080),
            "http://a.com:8080"
        );
    }
}
