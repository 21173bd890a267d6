//! `allowed_outbound_hosts` rules: `scheme://host[:port]`, with `*` wildcards, checked
//! for every outgoing request a component makes. Anything not matched is denied.

use std::fmt;

/// One allowed destination pattern, e.g. `https://*.example.com` or `http://127.0.0.1:*`.
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
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Subdomains(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortMatch {
    Any,
    Exact(u16),
    /// No port written: the scheme's default (80 for http, 443 for https).
    SchemeDefault,
}

const RULE_HELP: &str =
    "expected `scheme://host[:port]`, e.g. \"https://api.example.com\", \"https://*.example.com\" or \"http://127.0.0.1:*\"";

impl OutboundRule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid outbound host {text:?}: {why}; {RULE_HELP}");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("missing scheme"))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            _ => return Err(bad("the scheme must be http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("a rule names a host, not a path, query or user"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("malformed host or port"))?;
        let port = match port {
            None => PortMatch::SchemeDefault,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(
                p.parse()
                    .map_err(|_| bad("the port must be 0-65535 or *"))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_host_name(suffix).map_err(|why| bad(&why))?;
            HostMatch::Subdomains(suffix.to_string())
        } else {
            check_host_name(&host).map_err(|why| bad(&why))?;
            HostMatch::Exact(host)
        };
        Ok(OutboundRule {
            text: text.to_string(),
            scheme,
            host,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this rule.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Exact(p) => p == port,
            PortMatch::SchemeDefault => default_port(scheme) == Some(port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host),
            HostMatch::Subdomains(suffix) => {
                host.len() > suffix.len() + 1
                    && host.to_ascii_lowercase().ends_with(&format!(".{suffix}"))
            }
        };
        port_ok && host_ok
    }

    /// The narrowest rule that would allow a request to `scheme://host:port`, for error hints.
    pub fn suggestion(scheme: &str, host: &str, port: u16) -> String {
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

impl<'de> serde::Deserialize<'de> for OutboundRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        OutboundRule::parse(&text).map_err(serde::de::Error::custom)
    }
}

pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        Some((host, port)) if !host.is_empty() && !port.is_empty() => Some((host, Some(port))),
        Some(_) => None,
        None if !authority.is_empty() => Some((authority, None)),
        None => None,
    }
}

fn check_host_name(host: &str) -> Result<(), String> {
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "malformed IPv6 address".into());
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if host.len() > 253 || !host.split('.').all(valid_label) {
        return Err(format!(
            "{host:?} is not a host name (wildcards are only allowed as a whole host `*` or a leading `*.`)"
        ));
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
    }

    #[test]
    fn bad_rules_say_what_is_expected() {
        for bad in [
            "api.example.com",
            "ftp://x.com",
            "https://x.com/path",
            "https://x.com:port",
            "https://ex*ample.com",
            "https://",
            "https://x.com:99999",
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
