//! Picks the target for a request path: routes are tried from most to least specific
//! (exact, then parameters, then wildcard tails), so declaration order does not matter.

use kite_app::{RouteMatch, RoutePattern};

pub(crate) struct Router {
    /// Sorted most specific first; the `usize` indexes the trigger's targets.
    routes: Vec<(RoutePattern, usize)>,
}

impl Router {
    pub(crate) fn new(routes: impl IntoIterator<Item = (RoutePattern, usize)>) -> Self {
        let mut routes: Vec<(RoutePattern, usize)> = routes.into_iter().collect();
        // Stable sort: equally specific routes keep manifest order.
        routes.sort_by_key(|(pattern, _)| std::cmp::Reverse(pattern.specificity()));
        Router { routes }
    }

    /// The target index of the first route matching `path`, with the match.
    pub(crate) fn route<'a>(&'a self, path: &'a str) -> Option<(usize, RouteMatch<'a>)> {
        self.routes
            .iter()
            .find_map(|(pattern, index)| pattern.matches(path).map(|m| (*index, m)))
    }

    pub(crate) fn patterns(&self) -> impl Iterator<Item = (&RoutePattern, usize)> {
        self.routes.iter().map(|(p, i)| (p, *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(paths: &[&str]) -> Router {
        Router::new(
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| (RoutePattern::parse(p).unwrap(), i)),
        )
    }

    #[test]
    fn the_most_specific_route_wins_whatever_the_order() {
        let paths = ["/...", "/users/...", "/users/:id", "/users/me"];
        let r = router(&paths);
        let hit = |path: &str| r.route(path).map(|(i, _)| paths[i]);
        assert_eq!(hit("/users/me"), Some("/users/me"));
        assert_eq!(hit("/users/42"), Some("/users/:id"));
        assert_eq!(hit("/users/42/posts"), Some("/users/..."));
        assert_eq!(hit("/other"), Some("/..."));
        let r = router(&["/hello"]);
        assert!(r.route("/nothing").is_none());
    }
}
