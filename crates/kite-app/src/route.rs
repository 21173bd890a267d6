//! Route patterns: exact (`/hello`), parameters (`/users/:id`) and wildcard tails
//! (`/api/...`), with the ordering that makes the most specific route win.

/// A parsed `[[route]] path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    text: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// What a request path matched: named parameters and the wildcard tail, borrowed from
/// the pattern and the path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch<'a> {
    pub params: Vec<(&'a str, &'a str)>,
    /// The part of the path the `...` wildcard covered, with a leading `/` (empty if none).
    pub tail: &'a str,
}

/// Sort key: greater is more specific. Exact beats parameters beats wildcard; then more
/// segments win (so `/api/v1/...` beats `/api/...`), then more literal segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RouteSpecificity {
    class: u8,
    segments: usize,
    literals: usize,
}

impl RoutePattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(body) = text.strip_prefix('/') else {
            return Err(format!("route {text:?} must start with `/`"));
        };
        if text.contains(['?', '#', '*']) {
            return Err(format!(
                "route {text:?} may not contain `?`, `#` or `*` (use `/...` for a wildcard tail)"
            ));
        }
        let mut parts: Vec<&str> = body.split('/').collect();
        if parts.last() == Some(&"") {
            parts.pop();
        }
        let wildcard = parts.last() == Some(&"...");
        if wildcard {
            parts.pop();
        }
        let mut segments = Vec::with_capacity(parts.len());
        for part in parts {
            let segment = match part {
                "" => return Err(format!("route {text:?} has an empty segment (`//`)")),
                "..." => {
                    return Err(format!(
                        "route {text:?}: `...` may only be the last segment"
                    ))
                }
                _ if part.contains("...") => {
                    return Err(format!("route {text:?}: `...` must be a whole segment"))
                }
                _ => match part.strip_prefix(':') {
                    Some("") => return Err(format!("route {text:?} has a parameter with no name")),
                    Some(name) => Segment::Param(name.to_string()),
                    None => Segment::Literal(part.to_string()),
                },
            };
            segments.push(segment);
        }
        Ok(RoutePattern {
            text: text.to_string(),
            segments,
            wildcard,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A form in which two patterns that match the same paths are equal.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push(':'),
            }
        }
        if self.wildcard {
            out.push_str("/...");
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    pub fn specificity(&self) -> RouteSpecificity {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let class = if self.wildcard {
            0
        } else if literals < self.segments.len() {
            1
        } else {
            2
        };
        RouteSpecificity {
            class,
            segments: self.segments.len(),
            literals,
        }
    }

    /// Matches a request path (without query). A trailing `/` is ignored. Runs on every
    /// request for every route tried, so a miss allocates nothing.
    pub fn matches<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        let body = path.strip_prefix('/')?;
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut rest = body;
        let mut found = RouteMatch::default();
        for segment in &self.segments {
            if rest.is_empty() {
                return None;
            }
            let (part, after) = rest.split_once('/').unwrap_or((rest, ""));
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => found.params.push((name.as_str(), part)),
            }
            rest = after;
        }
        if !rest.is_empty() {
            if !self.wildcard {
                return None;
            }
            // `body` is `path[1..1 + body.len()]` and `rest` is its suffix, right after a
            // `/`; the tail keeps that `/`.
            let end = 1 + body.len();
            found.tail = &path[end - rest.len() - 1..end];
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(text: &str) -> RoutePattern {
        RoutePattern::parse(text).unwrap()
    }

    #[test]
    fn exact_params_and_wildcards_match() {
        assert!(pat("/hello").matches("/hello").is_some());
        assert!(pat("/hello").matches("/hello/").is_some());
        assert!(pat("/hello").matches("/hello/x").is_none());
        assert!(pat("/").matches("/").is_some());
        assert!(pat("/").matches("/x").is_none());
        let users = pat("/users/:id");
        let m = users.matches("/users/42").unwrap();
        assert_eq!(m.params, vec![("id", "42")]);
        assert!(pat("/users/:id").matches("/users").is_none());
        let api = pat("/api/...");
        let m = api.matches("/api/a/b").unwrap();
        assert_eq!(m.tail, "/a/b");
        assert!(pat("/api/...").matches("/api").is_some());
        assert!(pat("/api/...").matches("/apix").is_none());
        assert!(pat("/...").matches("/anything/at/all").is_some());
        assert_eq!(pat("/...").matches("/").unwrap().tail, "");
        assert!(pat("/a/b").matches("/a").is_none());
    }

    #[test]
    fn specificity_orders_exact_then_params_then_wildcards() {
        let exact = pat("/users/me").specificity();
        let param = pat("/users/:id").specificity();
        let long_wild = pat("/users/...").specificity();
        let root_wild = pat("/...").specificity();
        assert!(exact > param && param > long_wild && long_wild > root_wild);
    }

    #[test]
    fn canonical_forms_detect_duplicates() {
        assert_eq!(pat("/a/:x").canonical(), pat("/a/:y/").canonical());
        assert_ne!(pat("/a/...").canonical(), pat("/a").canonical());
        assert_eq!(pat("/").canonical(), "/");
    }

    #[test]
    fn malformed_routes_are_rejected() {
        for bad in [
            "hello", "/a//b", "/a/.../b", "/a/x...", "/a/:", "/a?b", "/a/*",
        ] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
