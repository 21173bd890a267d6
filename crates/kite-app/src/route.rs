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

/// Sort key: greater is more specific (Spin's precedence). Segments are compared left to
/// right, and the first that differs in kind decides: a literal beats a parameter beats a
/// wildcard tail (so `/a/b/...` beats `/a/...`). If one route's segments are a prefix of
/// the other's, the shorter wins (`/a` beats `/a/...`). Equal keys keep manifest order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpecificity {
    /// 2 for a literal, 1 for a parameter, 0 for the wildcard tail.
    kinds: Vec<u8>,
}

impl Ord for RouteSpecificity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        for (mine, theirs) in self.kinds.iter().zip(&other.kinds) {
            match mine.cmp(theirs) {
                std::cmp::Ordering::Equal => {}
                decided => return decided,
            }
        }
        other.kinds.len().cmp(&self.kinds.len())
    }
}

impl PartialOrd for RouteSpecificity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
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

    /// A Spin route: the leading `/` may be missing and `/*` is another way to write `/...`.
    /// The text is kept as written (Spin's `spin-raw-component-route`).
    pub fn parse_spin(text: &str) -> Result<Self, String> {
        let absolute = if text.starts_with('/') {
            text.to_string()
        } else {
            format!("/{text}")
        };
        let normalized = match absolute.strip_suffix("/*") {
            Some(prefix) => format!("{prefix}/..."),
            None => absolute,
        };
        let mut pattern = Self::parse(&normalized)?;
        pattern.text = text.to_string();
        Ok(pattern)
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
        let mut kinds: Vec<u8> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 2,
                Segment::Param(_) => 1,
            })
            .collect();
        if self.wildcard {
            kinds.push(0);
        }
        RouteSpecificity { kinds }
    }

    /// Matches a request path (without query), as Spin does: leading and trailing `/` are
    /// ignored, an empty segment never matches a literal or parameter, and a wildcard tail
    /// is the rest of the path as sent (`/api/...` on `/api/a/b/` gives `/a/b/`, on `/api/`
    /// gives `/`, on `/api` nothing). Runs for every route tried, so a miss allocates nothing.
    pub fn matches<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        if !path.starts_with('/') {
            return None;
        }
        let trimmed = path.trim_start_matches('/');
        let body = trimmed.trim_end_matches('/');
        let start = path.len() - trimmed.len();
        let mut rest = body;
        let mut found = RouteMatch::default();
        for segment in &self.segments {
            let (part, after) = rest.split_once('/').unwrap_or((rest, ""));
            match segment {
                _ if part.is_empty() => return None,
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => found.params.push((name.as_str(), part)),
            }
            rest = after;
        }
        if self.wildcard {
            // Where the matched segments end in `path`: the tail starts at the `/` after them.
            let end = if self.segments.is_empty() {
                0
            } else if rest.is_empty() {
                start + body.len()
            } else {
                start + body.len() - rest.len() - 1
            };
            found.tail = &path[end..];
        } else if !rest.is_empty() {
            return None;
        }
        Some(found)
    }

    /// Spin's `spin-matched-route`: the route with a leading `/` and without one trailing
    /// `/` (so `/` gives an empty string).
    pub fn matched_route(&self) -> String {
        let text = self.text.strip_suffix('/').unwrap_or(&self.text);
        if text.starts_with('/') || text.is_empty() {
            text.to_string()
        } else {
            format!("/{text}")
        }
    }

    /// The names of the route's `:name` parameters, in order (as a match lists them).
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// Spin's `spin-component-route`: the route as written without its `/...` tail.
    pub fn component_route(&self) -> &str {
        self.text.strip_suffix("/...").unwrap_or(&self.text)
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
        assert_eq!(
            pat("/...").matches("/anything/at/all").unwrap().tail,
            "/anything/at/all"
        );
        assert_eq!(pat("/...").matches("/").unwrap().tail, "/");
        assert_eq!(pat("/api/...").matches("/api").unwrap().tail, "");
        assert_eq!(pat("/api/...").matches("/api/").unwrap().tail, "/");
        assert_eq!(pat("/api/...").matches("/api/a/b/").unwrap().tail, "/a/b/");
        assert!(pat("/hello").matches("//hello//").is_some());
        assert!(pat("/a/b").matches("/a//b").is_none());
        assert!(pat("/a/:x/c").matches("/a//c").is_none());
        assert!(pat("/a/b").matches("/a").is_none());
    }

    #[test]
    fn specificity_follows_spins_precedence() {
        let exact = pat("/users/me").specificity();
        let param = pat("/users/:id").specificity();
        let long_wild = pat("/users/...").specificity();
        let root_wild = pat("/...").specificity();
        assert!(exact > param && param > long_wild && long_wild > root_wild);
        // The leftmost difference in kind decides.
        assert!(pat("/y/:b").specificity() > pat("/:a/x").specificity());
        assert!(pat("/b/...").specificity() > pat("/:a/x/y").specificity());
        // A prefix loses to nothing more: `/a` beats `/a/...`, `/` beats `/...`.
        assert!(pat("/a").specificity() > pat("/a/...").specificity());
        assert!(pat("/").specificity() > root_wild);
        assert!(pat("/a/:x/...").specificity() > pat("/a/...").specificity());
    }

    #[test]
    fn spin_route_headers_come_from_the_route_as_written() {
        assert_eq!(pat("/").matched_route(), "");
        assert_eq!(pat("/hello/").matched_route(), "/hello");
        assert_eq!(pat("/api/...").matched_route(), "/api/...");
        assert_eq!(pat("/api/...").component_route(), "/api");
        assert_eq!(pat("/...").component_route(), "");
        assert_eq!(pat("/users/:id").component_route(), "/users/:id");
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
