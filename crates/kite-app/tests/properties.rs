//! Property-based fuzz tests for the manifest-side parsers: units, routes, outbound rules,
//! variable templates, kite.toml and the runtime configuration never panic and keep invariants.

// Each property runs a small, fixed number of cases so that `cargo test -p kite-app` stays
// fast. `PROPTEST_CASES`, when set, replaces every property's own count (see `config`), so a
// long fuzzing run is:
//
//     PROPTEST_CASES=100000 cargo test -p kite-app --test properties --release
//
// (`ProptestConfig::with_cases(n)` would ignore `PROPTEST_CASES`: only `ProptestConfig::default()`
// reads it.) Failures are not persisted to `proptest-regressions` files; a failing case is
// printed, shrunk, with the seed to reproduce it.

use kite_app::{
    load_app, parse_duration, parse_size, ManifestError, OutboundRule, RoutePattern, RuntimeConfig,
    Template,
};
use proptest::prelude::*;
use proptest::sample::select;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

/// `cases` cases, unless `PROPTEST_CASES` asks for another number; nothing written to disk.
fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            cases
        },
        failure_persistence: None,
        ..defaults
    }
}

// ---------------------------------------------------------------------------------------------
// Generic text

/// Characters that matter to the parsers under test, plus a few multi-byte ones.
const SOUP: &[char] = &[
    '/', ':', '.', '*', '?', '#', '{', '}', '[', ']', '=', '"', '\'', '\\', '\n', '\r', '\t', ' ',
    ',', '-', '_', '@', '0', '1', '9', 'a', 'b', 's', 'm', 'B', 'M', 'K', 'i', 'µ', 'é', '😀',
    '\u{0}', '\u{7f}', '\u{feff}',
];

/// Arbitrary text: any Unicode, or a soup of the characters the parsers look at.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..48).prop_map(String::from_iter),
        prop::collection::vec(select(SOUP), 0..48).prop_map(String::from_iter),
        "\\PC{0,48}",
    ]
}

/// A TOML basic string holding `text`, escaped so that it always parses.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string value: mostly well-formed, sometimes written raw (and so perhaps broken).
fn toml_string(text: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (text, 0..10u8).prop_map(|(text, how)| match how {
        0 => format!("\"{text}\""),
        1 => format!("'{text}'"),
        _ => quoted(&text),
    })
}

/// Inserts, deletes or replaces a little of `text` at char boundaries.
fn mutate(text: String) -> impl Strategy<Value = String> {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    (
        0..4u8,
        0..=len,
        0..=len,
        prop::collection::vec(select(SOUP), 0..4),
    )
        .prop_map(move |(how, a, b, insert)| {
            let (start, end) = (a.min(b), a.max(b).min(a.min(b) + 8));
            let mut out = chars.clone();
            match how {
                0 => {}
                1 => {
                    out.drain(start..end);
                }
                2 => {
                    out.splice(start..start, insert);
                }
                _ => {
                    out.splice(start..end, insert);
                }
            }
            out.into_iter().collect()
        })
}

// ---------------------------------------------------------------------------------------------
// Sizes and durations

const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("B", 1),
    ("KB", 1_000),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

/// humantime's units, and how they compute: below a second in u64 nanoseconds, from a second
/// up in u64 seconds (so `n` of a unit overflows when that product does).
#[derive(Debug, Clone, Copy)]
enum Scale {
    Nanos(u64),
    Secs(u64),
}

const DURATION_UNITS: &[(&str, Scale)] = &[
    ("ns", Scale::Nanos(1)),
    ("nsec", Scale::Nanos(1)),
    ("us", Scale::Nanos(1_000)),
    ("µs", Scale::Nanos(1_000)),
    ("ms", Scale::Nanos(1_000_000)),
    ("msec", Scale::Nanos(1_000_000)),
    ("s", Scale::Secs(1)),
    ("sec", Scale::Secs(1)),
    ("seconds", Scale::Secs(1)),
    ("m", Scale::Secs(60)),
    ("min", Scale::Secs(60)),
    ("h", Scale::Secs(3_600)),
    ("hours", Scale::Secs(3_600)),
    ("d", Scale::Secs(86_400)),
    ("w", Scale::Secs(604_800)),
    ("M", Scale::Secs(2_630_016)),
    ("y", Scale::Secs(31_557_600)),
];

/// The exact duration of `n` units, `None` when it cannot be represented.
fn exact(n: u64, scale: Scale) -> Option<Duration> {
    match scale {
        Scale::Nanos(f) => n.checked_mul(f).map(Duration::from_nanos),
        Scale::Secs(f) => n.checked_mul(f).map(Duration::from_secs),
    }
}

/// Numbers around the edges of u64 and of a second, and ordinary ones.
fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..100_000u64,
        2 => any::<u64>(),
        2 => select(vec![
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            500_000_000,
            u64::MAX / 1_000,
            u64::MAX / 60,
            u64::MAX - 1,
            u64::MAX,
        ]),
    ]
}

/// Whitespace the parsers should ignore around a value.
fn blank() -> impl Strategy<Value = &'static str> {
    select(vec!["", "", "", " ", "\t", "  "])
}

/// A duration's parse result agrees with its exact value: equal while it is far from the
/// limit of `Duration`, and an error (never a panic, never a wrong value) beyond it. With
/// `may_fail`, an error is accepted even for a value that fits.
fn check_duration(
    text: &str,
    expected: Option<Duration>,
    may_fail: bool,
) -> Result<(), TestCaseError> {
    let parsed = parse_duration(text);
    match expected {
        Some(d) if d.is_zero() => prop_assert!(parsed.is_err(), "{text:?} gave {parsed:?}"),
        Some(d) if d.as_secs() < 1 << 63 && !may_fail => {
            prop_assert_eq!(parsed, Ok(d), "{:?}", text)
        }
        Some(d) => prop_assert!(
            parsed.is_err() || parsed == Ok(d),
            "{text:?} gave {parsed:?}, not {d:?}"
        ),
        None => prop_assert!(parsed.is_err(), "{text:?} overflows but gave {parsed:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn sizes_and_durations_never_panic(text in any_text()) {
        let _ = parse_size(&text);
        let _ = parse_duration(&text);
    }

    #[test]
    fn near_valid_sizes_and_durations_never_panic(text in "[ 0-9]{0,24}[ .a-zA-Zµ]{0,8}[0-9]{0,3}") {
        let _ = parse_size(&text);
        let _ = parse_duration(&text);
    }

    #[test]
    fn sizes_are_the_number_times_the_unit(
        n in edgy_u64(),
        (unit, factor) in select(SIZE_UNITS),
        (before, between, after) in (blank(), blank(), blank()),
    ) {
        let text = format!("{before}{n}{between}{unit}{after}");
        match n.checked_mul(factor) {
            Some(bytes) => prop_assert_eq!(parse_size(&text), Ok(bytes), "{:?}", text),
            None => {
                let err = parse_size(&text).expect_err("an overflowing size is an error");
                prop_assert!(err.contains("too large"), "{text:?}: {err}");
            }
        }
    }

    #[test]
    fn durations_are_the_number_times_the_unit(
        n in edgy_u64(),
        (unit, scale) in select(DURATION_UNITS),
        (before, between, after) in (blank(), blank(), blank()),
    ) {
        check_duration(&format!("{before}{n}{between}{unit}{after}"), exact(n, scale), false)?;
    }

    #[test]
    fn durations_with_several_terms_add_up(
        terms in prop::collection::vec((edgy_u64(), select(DURATION_UNITS)), 1..5),
        separator in select(vec!["", " ", "  "]),
    ) {
        let text = terms
            .iter()
            .map(|(n, (unit, _))| format!("{n}{unit}"))
            .collect::<Vec<_>>()
            .join(separator);
        let expected = terms.iter().try_fold(Duration::ZERO, |sum, (n, (_, scale))| {
            sum.checked_add(exact(*n, *scale)?)
        });
        // humantime adds a term below a second to the sum's nanoseconds in a u64, so such a
        // term within a second of u64::MAX nanoseconds may fail after another term.
        let may_fail = terms.len() > 1 && terms.iter().any(|(n, (_, scale))| match scale {
            Scale::Nanos(f) => n.saturating_mul(*f) > u64::MAX - 1_000_000_000,
            Scale::Secs(_) => false,
        });
        check_duration(&text, expected, may_fail)?;
    }

    /// Sums that land on the largest `Duration`, where a carried second has nowhere to go.
    #[test]
    fn durations_at_the_limit_of_seconds(
        below_max in 0..3u64,
        nanos in prop_oneof![Just(1_000_000_000u64), 999_999_990..1_000_000_010u64, 0..3_000_000_000u64],
        split in 0..=1_000u64,
        order in any::<bool>(),
    ) {
        let secs = format!("{}s", u64::MAX - below_max);
        let nanos_terms = format!("{}ns {}ns", nanos - nanos.min(split), nanos.min(split));
        let text = if order { format!("{secs} {nanos_terms}") } else { format!("{nanos_terms} {secs}") };
        let expected = Duration::from_secs(u64::MAX - below_max).checked_add(Duration::from_nanos(nanos));
        check_duration(&text, expected, false)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// A literal path segment: never empty, never starting with `:`, never containing `...`.
fn literal_segment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_~é.-][a-zA-Z0-9_~:é.-]{0,6}"
        .prop_filter("`...` is not a literal", |s| !s.contains("..."))
}

fn param_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,5}"
}

#[derive(Debug, Clone)]
enum Seg {
    Literal(String),
    Param(String),
}

/// A valid route pattern, as segments plus whether it ends in `/...` and a trailing `/`.
fn valid_route() -> impl Strategy<Value = (Vec<Seg>, bool, bool)> {
    (
        prop::collection::vec(
            prop_oneof![
                2 => literal_segment().prop_map(Seg::Literal),
                1 => param_name().prop_map(Seg::Param),
            ],
            0..5,
        ),
        any::<bool>(),
        any::<bool>(),
    )
}

fn route_text(segments: &[Seg], wildcard: bool, trailing_slash: bool) -> String {
    let mut text = String::new();
    for segment in segments {
        text.push('/');
        match segment {
            Seg::Literal(l) => text.push_str(l),
            Seg::Param(p) => {
                text.push(':');
                text.push_str(p);
            }
        }
    }
    if wildcard {
        text.push_str("/...");
    }
    if trailing_slash || text.is_empty() {
        text.push('/');
    }
    text
}

/// A value for a path segment: never empty, no `/`.
fn segment_value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_%:é.-]{1,6}"
}

/// Route-ish text: valid routes and their near misses.
fn routeish_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(),
        "(/(:?[a-z]{0,3}|\\.{1,4}|\\*|\\?|#)){0,5}/?",
        valid_route().prop_map(|(s, w, t)| route_text(&s, w, t)),
    ]
}

/// Path-ish text, with the characters and shapes routes care about.
fn pathish_text() -> impl Strategy<Value = String> {
    prop_oneof![any_text(), "/?([a-z:.]{0,3}/{0,2}){0,6}"]
}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn route_parsing_and_matching_never_panic(pattern in routeish_text(), path in pathish_text()) {
        if let Ok(route) = RoutePattern::parse(&pattern) {
            let _ = route.canonical();
            let _ = route.specificity();
            if let Some(found) = route.matches(&path) {
                prop_assert!(path.ends_with(found.tail), "{:?}", found.tail);
                prop_assert!(found.tail.is_empty() || found.tail.starts_with('/'), "{:?}", found.tail);
            }
        }
    }

    #[test]
    fn canonical_forms_reparse_to_themselves((segments, wildcard, trailing) in valid_route()) {
        let text = route_text(&segments, wildcard, trailing);
        let route = RoutePattern::parse(&text).map_err(TestCaseError::fail)?;
        let canonical = route.canonical();
        // Parameters are written as a bare `:` in the canonical form, which is not a valid
        // pattern on its own; naming them makes it one. Literals never start with `:`, so
        // `/:` only ever starts a parameter.
        let named = canonical.replace("/:", "/:p");
        let reparsed = RoutePattern::parse(&named).map_err(TestCaseError::fail)?;
        prop_assert_eq!(reparsed.canonical(), canonical.clone());
        if !segments.iter().any(|s| matches!(s, Seg::Param(_))) {
            let reparsed = RoutePattern::parse(&canonical).map_err(TestCaseError::fail)?;
            prop_assert_eq!(reparsed.canonical(), canonical.clone());
        }
        // Renaming parameters or toggling the trailing `/` keeps the canonical form.
        let renamed: Vec<Seg> = segments
            .iter()
            .map(|s| match s {
                Seg::Param(p) => Seg::Param(format!("{p}x")),
                literal => literal.clone(),
            })
            .collect();
        let other = RoutePattern::parse(&route_text(&renamed, wildcard, !trailing))
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(other.canonical(), canonical);
    }

    #[test]
    fn a_route_matches_its_own_path(
        (segments, wildcard, trailing) in valid_route(),
        values in prop::collection::vec(segment_value(), 5),
        trailing_in_path in any::<bool>(),
    ) {
        let route = RoutePattern::parse(&route_text(&segments, wildcard, trailing))
            .map_err(TestCaseError::fail)?;
        // A pattern of literals is its own path.
        if !wildcard && !segments.iter().any(|s| matches!(s, Seg::Param(_))) {
            prop_assert!(route.matches(route.as_str()).is_some(), "{}", route.as_str());
        }
        // With parameters filled in, the match returns them in order.
        let filled: Vec<Seg> = segments
            .iter()
            .zip(&values)
            .map(|(s, v)| match s {
                Seg::Param(_) => Seg::Literal(v.clone()),
                literal => literal.clone(),
            })
            .collect();
        let path = route_text(&filled, false, trailing_in_path);
        let found = route.matches(&path);
        prop_assert!(found.is_some(), "{} should match {path:?}", route.as_str());
        let found = found.unwrap();
        let expected: Vec<(&str, &str)> = segments
            .iter()
            .zip(&values)
            .filter_map(|(s, v)| match s {
                Seg::Param(p) => Some((p.as_str(), v.as_str())),
                Seg::Literal(_) => None,
            })
            .collect();
        prop_assert_eq!(found.params, expected);
        // A wildcard that matched nothing keeps the path's trailing `/` (the root path's only).
        let tail = if wildcard && (trailing_in_path || segments.is_empty()) { "/" } else { "" };
        prop_assert_eq!(found.tail, tail);
    }

    #[test]
    fn a_wildcard_matches_any_suffix(
        prefix in prop::collection::vec(literal_segment(), 0..4),
        suffix in pathish_text(),
    ) {
        let segments: Vec<Seg> = prefix.iter().cloned().map(Seg::Literal).collect();
        let route = RoutePattern::parse(&route_text(&segments, true, false))
            .map_err(TestCaseError::fail)?;
        let base = route_text(&segments, false, false);
        let base = base.trim_end_matches('/');
        let path = format!("{base}/{suffix}");
        let found = route.matches(&path);
        prop_assert!(found.is_some(), "{} should match {path:?}", route.as_str());
        // The tail is the rest of the path as sent, from the `/` after the prefix.
        prop_assert_eq!(found.unwrap().tail, format!("/{suffix}"));
        // Nothing outside the prefix matches.
        let outside = format!("{base}x/{suffix}");
        if !prefix.is_empty() {
            prop_assert!(route.matches(&outside).is_none(), "{} matched {outside:?}", route.as_str());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound rules

/// A lowercase DNS name: 1-63 letter/digit/hyphen labels, not starting or ending with `-`.
fn dns_name() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", 1..5)
        .prop_map(|labels| labels.join("."))
        .prop_filter("a DNS name is at most 253 characters", |name| {
            name.len() <= 253
        })
}

/// A host as a request URI carries it: a DNS name, IPv4, or bracketed IPv6.
fn request_host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => dns_name(),
        2 => any::<[u8; 4]>().prop_map(|a| Ipv4Addr::from(a).to_string()),
        1 => any::<[u16; 8]>().prop_map(|a| format!("[{}]", Ipv6Addr::from(a))),
    ]
}

fn scheme() -> impl Strategy<Value = &'static str> {
    select(vec!["http", "https"])
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![any::<u16>(), select(vec![0, 80, 443, 8080, 65535])]
}

/// Rule-ish text: valid rules and their near misses.
fn ruleish_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(),
        "(\\*|https?|ftp|)(://)?(\\*\\.?)?[a-z0-9.:_\\[\\]*-]{0,16}(:[0-9*]{0,6})?/?",
        (scheme(), request_host(), port()).prop_map(|(s, h, p)| OutboundRule::suggestion(s, &h, p)),
    ]
}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn outbound_rules_never_panic(
        rule in ruleish_text(),
        scheme in prop_oneof![scheme().prop_map(String::from), any_text()],
        host in prop_oneof![request_host(), any_text()],
        port in port(),
    ) {
        if let Ok(rule) = OutboundRule::parse(&rule) {
            let _ = rule.allows(&scheme, &host, port);
        }
    }

    #[test]
    fn a_suggested_rule_allows_the_request_and_no_other_port(
        scheme in scheme(),
        host in request_host(),
        port in port(),
        other_port in port(),
    ) {
        let suggestion = OutboundRule::suggestion(scheme, &host, port);
        let rule = OutboundRule::parse(&suggestion)
            .map_err(|e| TestCaseError::fail(format!("suggestion {suggestion:?} does not parse: {e}")))?;
        prop_assert!(rule.allows(scheme, &host, port), "{suggestion} denies {scheme}://{host}:{port}");
        prop_assert!(
            rule.allows(scheme, &host.to_ascii_uppercase(), port),
            "{suggestion} is case-sensitive"
        );
        if other_port != port {
            prop_assert!(!rule.allows(scheme, &host, other_port), "{suggestion} allows port {other_port}");
        }
        let other_scheme = if scheme == "http" { "https" } else { "http" };
        prop_assert!(!rule.allows(other_scheme, &host, port), "{suggestion} allows {other_scheme}");
    }
}

// ---------------------------------------------------------------------------------------------
// Variable templates

#[derive(Debug, Clone)]
enum Piece {
    Literal(String),
    Variable {
        name: String,
        before: String,
        after: String,
    },
}

fn template_piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        "[^{}]{1,8}".prop_map(Piece::Literal),
        ("[a-z][a-z0-9_]{0,8}", "[ \t]{0,2}", "[ \t]{0,2}").prop_map(|(name, before, after)| {
            Piece::Variable {
                name,
                before,
                after,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(config(5_000))]

    #[test]
    fn templates_never_panic(
        text in prop_oneof![any_text(), "([a-z ]{0,3}(\\{\\{|\\}\\}|\\{|\\})[ a-zA-Z_-]{0,4}){0,5}"],
    ) {
        if let Ok(template) = Template::parse(&text) {
            for name in template.references() {
                prop_assert!(kite_app::is_valid_variable_name(name), "{name:?} from {text:?}");
            }
        }
    }

    #[test]
    fn templates_refer_to_the_variables_written_in_them(
        pieces in prop::collection::vec(template_piece(), 0..8),
    ) {
        let mut text = String::new();
        let mut names = Vec::new();
        for piece in &pieces {
            match piece {
                Piece::Literal(l) => text.push_str(l),
                Piece::Variable { name, before, after } => {
                    text.push_str(&format!("{{{{{before}{name}{after}}}}}"));
                    names.push(name.as_str());
                }
            }
        }
        let template = Template::parse(&text).map_err(TestCaseError::fail)?;
        prop_assert_eq!(template.references().collect::<Vec<_>>(), names);
    }
}

// ---------------------------------------------------------------------------------------------
// kite.toml

/// A temporary app directory holding `hello.wasm` and a `static/` directory, as the
/// manifest tests have it.
fn app_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.wasm"), b"\0asm").unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    dir
}

/// An error names the file it is about, and a line and column that exist in it.
fn check_error(err: &ManifestError, file: &Path, text: &[u8]) -> Result<(), TestCaseError> {
    let shown = err.to_string();
    prop_assert!(
        shown.contains(&file.display().to_string()),
        "{shown:?} does not name {}",
        file.display()
    );
    if let Some(location) = err.location {
        let text = String::from_utf8_lossy(text);
        let lines: Vec<&str> = text.split('\n').collect();
        prop_assert!(
            location.line >= 1 && location.line <= lines.len(),
            "{shown}: line {} of a {}-line file",
            location.line,
            lines.len()
        );
        let line = lines[location.line - 1];
        prop_assert!(
            location.column >= 1 && location.column <= line.chars().count() + 1,
            "{shown}: column {} of a {}-character line",
            location.column,
            line.chars().count()
        );
    }
    Ok(())
}

fn check_manifest(text: &[u8]) -> Result<(), TestCaseError> {
    let dir = app_dir();
    let file = dir.path().join("kite.toml");
    std::fs::write(&file, text).unwrap();
    match load_app(dir.path()) {
        Err(err) => check_error(&err, &file, text)?,
        // What loaded is consistent: it came from this file, and routes name its components.
        Ok(app) => {
            prop_assert_eq!(&app.manifest_path, &file);
            for (pattern, target) in app.routes() {
                if let kite_app::Target::Component(id) = target {
                    prop_assert!(
                        app.components.iter().any(|c| &c.id == id),
                        "route {} names a missing component {:?}",
                        pattern.as_str(),
                        id
                    );
                }
            }
        }
    }
    Ok(())
}

/// Words kite.toml uses, for key soup.
const MANIFEST_WORDS: &[&str] = &[
    "manifest_version",
    "app",
    "name",
    "version",
    "description",
    "route",
    "path",
    "component",
    "source",
    "build",
    "command",
    "workdir",
    "files",
    "destination",
    "writable",
    "environment",
    "allowed_outbound_hosts",
    "limits",
    "memory",
    "timeout",
    "max_request_body",
    "max_concurrency",
    "variables",
    "default",
    "required",
    "secret",
    "key_value_stores",
    "sqlite_databases",
    "hello",
    "colour",
];

/// TOML tokens and manifest words strung together.
fn toml_soup(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    let tokens = prop_oneof![
        3 => select(words).prop_map(String::from),
        3 => select(vec![
            "[", "]", "[[", "]]", "=", " = ", "\"", "'", "\"\"\"", "\n", ".", ",", "{", "}", "#",
            "1", "-1", "0", "true", "1.5", "1979-05-27", "9223372036854775808", "\"x\"", "\"/\"",
            "é", "😀", "\\", "\\u00e9", "\\uD800", "\r\n", "\t",
        ])
        .prop_map(String::from),
        1 => any_text(),
    ];
    prop::collection::vec(tokens, 0..40).prop_map(|tokens| tokens.concat())
}

/// Mostly `valid`, now and then `invalid`: a manifest with one mistake gets further through
/// the loader than one with many.
fn mostly<T: std::fmt::Debug + Clone>(
    valid: impl Strategy<Value = T> + 'static,
    invalid: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![12 => valid, 1 => invalid].boxed()
}

/// Now and then a value, usually nothing.
fn sometimes<T: std::fmt::Debug + Clone + 'static>(
    value: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![8 => Just(None), 1 => value.prop_map(Some)].boxed()
}

/// Any value for a key: strings (perhaps malformed), numbers, booleans, arrays, tables.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        toml_string(any_text()),
        any::<i64>().prop_map(|n| n.to_string()),
        select(vec![
            "true",
            "1.5",
            "[]",
            "{}",
            "[1, \"a\"]",
            "{ a = 1 }",
            "1979-05-27"
        ])
        .prop_map(String::from),
    ]
}

fn size_value() -> BoxedStrategy<String> {
    mostly(
        (1..100_000u64, select(SIZE_UNITS)).prop_map(|(n, (unit, factor))| {
            // Mostly at least 1MiB, the smallest memory limit.
            let n = if factor < 1 << 20 { n << 20 } else { n };
            quoted(&format!("{n}{unit}"))
        }),
        prop_oneof![
            (edgy_u64(), select(SIZE_UNITS))
                .prop_map(|(n, (unit, _))| quoted(&format!("{n}{unit}"))),
            any::<i64>().prop_map(|n| n.to_string()),
            any_value(),
        ],
    )
}

fn duration_value() -> BoxedStrategy<String> {
    mostly(
        (1..1_000u64, select(DURATION_UNITS))
            .prop_map(|(n, (unit, _))| quoted(&format!("{n}{unit}"))),
        prop_oneof![
            prop::collection::vec((edgy_u64(), select(DURATION_UNITS)), 1..3).prop_map(|terms| {
                quoted(
                    &terms
                        .iter()
                        .map(|(n, (unit, _))| format!("{n}{unit}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }),
            any_value(),
        ],
    )
}

fn id() -> BoxedStrategy<String> {
    mostly(
        select(vec!["hello", "hello", "other", "api-2", "w_x"]).prop_map(String::from),
        prop_oneof![
            select(vec!["Hello", "1x", "", "é", "x.y"]).prop_map(String::from),
            "[a-zA-Z0-9_.-]{0,6}",
        ],
    )
}

fn variable_name() -> BoxedStrategy<String> {
    mostly(
        select(vec!["token", "url", "api_key", "x1"]).prop_map(String::from),
        prop_oneof![
            select(vec!["Token", "1x", "", "a-b", "é"]).prop_map(String::from),
            "[a-z_0-9]{0,6}",
        ],
    )
}

/// A `key = value` line for a key from the format or a random one: usually out of place.
fn stray_line() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            select(MANIFEST_WORDS).prop_map(String::from),
            "[a-zA-Z_.-]{1,8}"
        ],
        any_value(),
    )
        .prop_map(|(k, v)| format!("{k} = {v}\n"))
}

/// An `allowed_outbound_hosts` entry.
fn rule_value() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            (scheme(), request_host(), port())
                .prop_map(|(s, h, p)| OutboundRule::suggestion(s, &h, p)),
            (
                select(vec!["*", "http", "https"]),
                dns_name(),
                select(vec!["", ":*", ":8080"])
            )
                .prop_map(|(s, h, p)| format!("{s}://*.{h}{p}")),
        ]
        .prop_map(|rule| quoted(&rule)),
        toml_string(ruleish_text()),
    )
}

/// One `[component.<id>]` with its sub-tables; `id` is given so that ids can be unique.
fn component_table(id: String) -> impl Strategy<Value = String> {
    let first = (
        mostly(
            select(vec!["hello.wasm", "target/x.wasm"]).prop_map(quoted),
            prop_oneof![
                select(vec!["", "/abs.wasm", "../x.wasm"]).prop_map(quoted),
                any_value(),
            ],
        ),
        sometimes((size_value(), duration_value(), size_value())),
        sometimes(mostly(
            (1..1_000i64).prop_map(|n| n.to_string()),
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                select(vec!["0", "-1", "4294967296", "\"1\""]).prop_map(String::from),
            ],
        )),
        prop::collection::vec(rule_value(), 0..3),
        sometimes(stray_line()),
    );
    let second = (
        prop::collection::btree_map(
            variable_name(),
            mostly(
                "[a-z/]{0,3}(\\{\\{ ?(token|url) ?\\}\\}[a-z/]{0,3}){0,2}".prop_map(|t| quoted(&t)),
                toml_string(prop_oneof![
                    "[a-z/]{0,3}(\\{\\{ ?(token|url|nope|Bad|) ?\\}?\\}?){0,3}",
                    any_text(),
                ]),
            ),
            0..3,
        ),
        sometimes(prop::collection::vec(
            (
                mostly(
                    Just("static"),
                    select(vec![
                        "hello.wasm",
                        "..",
                        "/etc",
                        "missing",
                        "static/../..",
                        "",
                    ]),
                ),
                mostly(
                    select(vec!["/static", "/data/x"]),
                    select(vec!["static", "/a/../b", "/", "", "/ok/./x", "/é"]),
                ),
                any::<bool>(),
            ),
            1..3,
        )),
        sometimes(prop::collection::btree_map(
            mostly(
                select(vec!["A", "PATH", "HOME_DIR"]),
                select(vec!["", "A=B", "a\u{0}b", "é"]),
            ),
            toml_string(any_text()),
            1..3,
        )),
        prop::collection::vec(mostly(select(vec!["default", "cache"]), Just("")), 0..3),
        prop::collection::vec(mostly(select(vec!["default", "reports"]), Just("")), 0..2),
        sometimes(mostly(
            select(vec!["", "workdir = \"sub\"\n"]),
            select(vec!["workdir = 1\n", "shell = true\n"]),
        )),
    );
    (first, second).prop_map(
        move |(
            (source, limits, concurrency, hosts, stray),
            (variables, files, environment, kv, sqlite, build),
        )| {
            let quoted_id = quoted(&id);
            let list = |items: &[String]| items.join(", ");
            let labels = |labels: &[&str]| labels.iter().map(|l| quoted(l)).collect::<Vec<_>>();
            let mut t = format!("[component.{quoted_id}]\nsource = {source}\n");
            t += &format!("allowed_outbound_hosts = [{}]\n", list(&hosts));
            t += &format!("key_value_stores = [{}]\n", list(&labels(&kv)));
            t += &format!("sqlite_databases = [{}]\n", list(&labels(&sqlite)));
            t += &stray.unwrap_or_default();
            for (source, destination, writable) in files.unwrap_or_default() {
                t += &format!(
                    "[[component.{quoted_id}.files]]\nsource = {}\ndestination = {}\nwritable = {writable}\n",
                    quoted(source),
                    quoted(destination)
                );
            }
            if let Some(build) = build {
                t += &format!("[component.{quoted_id}.build]\ncommand = \"make\"\n{build}");
            }
            if limits.is_some() || concurrency.is_some() {
                t += &format!("[component.{quoted_id}.limits]\n");
                if let Some((memory, timeout, body)) = limits {
                    t += &format!("memory = {memory}\ntimeout = {timeout}\nmax_request_body = {body}\n");
                }
                if let Some(n) = concurrency {
                    t += &format!("max_concurrency = {n}\n");
                }
            }
            if !variables.is_empty() {
                t += &format!("[component.{quoted_id}.variables]\n");
                for (name, value) in variables {
                    t += &format!("{} = {value}\n", quoted(&name));
                }
            }
            if let Some(environment) = environment {
                t += &format!("[component.{quoted_id}.environment]\n");
                for (name, value) in environment {
                    t += &format!("{} = {value}\n", quoted(name));
                }
            }
            t
        },
    )
}

/// A `[variables]` entry's fields: usually one of the two valid shapes.
fn variable_fields() -> BoxedStrategy<String> {
    mostly(
        prop_oneof![
            (toml_string("[a-z:/.]{0,8}"), any::<bool>())
                .prop_map(|(d, secret)| format!("default = {d}, secret = {secret}")),
            Just("required = true".to_string()),
            Just("required = true, secret = true".to_string()),
        ],
        (
            prop::option::of(any_value()),
            prop::option::of(any_value()),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(default, required, secret)| {
                let mut fields = Vec::new();
                if let Some(default) = default {
                    fields.push(format!("default = {default}"));
                }
                if let Some(required) = required {
                    fields.push(format!("required = {required}"));
                }
                if let Some(secret) = secret {
                    fields.push(format!("secret = {secret}"));
                }
                fields.join(", ")
            }),
    )
}

/// A kite.toml that is valid or nearly so: every table and key the format has, usually with
/// valid values, now and then a wrong value, a stray key or a small textual mutation.
fn near_valid_manifest() -> impl Strategy<Value = String> {
    let ids = prop::collection::btree_set(id(), 0..3);
    ids.prop_flat_map(|ids| {
        let ids: Vec<String> = ids.into_iter().collect();
        let components = ids
            .iter()
            .cloned()
            .map(component_table)
            .collect::<Vec<_>>()
            .prop_map(|tables| tables.concat());
        // Routes usually name a component the manifest has.
        let route_component = if ids.is_empty() {
            id()
        } else {
            mostly(select(ids), id())
        };
        (
            mostly(
                Just("1"),
                select(vec!["0", "2", "-1", "9223372036854775807", "\"1\"", "1.0"]),
            ),
            mostly("[a-z][a-z0-9 -]{0,8}".prop_map(|n| quoted(&n)), any_value()),
            sometimes(stray_line()),
            // Usually declares `token` and `url`, which component templates refer to.
            (
                mostly(Just(true), Just(false)),
                mostly(Just(true), Just(false)),
                prop::collection::vec((variable_name(), variable_fields()), 4),
                prop::collection::btree_map(variable_name(), variable_fields(), 0..2),
            )
                .prop_map(|(token, url, fields, mut extra)| {
                    let mut declared = std::collections::BTreeMap::new();
                    if token {
                        declared.insert("token".to_string(), fields[0].1.clone());
                    }
                    if url {
                        declared.insert("url".to_string(), fields[1].1.clone());
                    }
                    declared.append(&mut extra);
                    declared
                }),
            components,
            prop::collection::vec(
                (
                    mostly(
                        valid_route().prop_map(|(s, w, t)| quoted(&route_text(&s, w, t))),
                        toml_string(routeish_text()),
                    ),
                    route_component.prop_map(|i| quoted(&i)),
                ),
                0..4,
            ),
        )
    })
    .prop_map(|(version, name, stray, variables, components, routes)| {
        let mut t = format!("manifest_version = {version}\n[app]\nname = {name}\n");
        t += &stray.unwrap_or_default();
        for (path, component) in routes {
            t += &format!("[[route]]\npath = {path}\ncomponent = {component}\n");
        }
        t += &components;
        if !variables.is_empty() {
            t += "[variables]\n";
            for (name, fields) in variables {
                t += &format!("{} = {{ {fields} }}\n", quoted(&name));
            }
        }
        t
    })
    .prop_flat_map(|text| prop_oneof![6 => Just(text.clone()), 1 => mutate(text)])
}

proptest! {
    #![proptest_config(config(1_500))]

    #[test]
    fn manifests_of_random_bytes_never_panic(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            any_text().prop_map(String::into_bytes),
        ],
    ) {
        check_manifest(&bytes)?;
    }

    #[test]
    fn manifests_of_toml_soup_never_panic(text in toml_soup(MANIFEST_WORDS)) {
        check_manifest(text.as_bytes())?;
    }

    #[test]
    fn near_valid_manifests_load_or_point_at_the_mistake(text in near_valid_manifest()) {
        check_manifest(text.as_bytes())?;
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime configuration

const RUNTIME_WORDS: &[&str] = &[
    "key_value_store",
    "sqlite_database",
    "variable_provider",
    "type",
    "path",
    "url",
    "prefix",
    "timeout",
    "sqlite",
    "redis",
    "env",
    "dotenv",
    "directory",
    "default",
];

/// A table `type`: its name, the settings it takes and the ones it needs.
type TableType = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// The sections of a runtime configuration, with the types each takes and, per type, the
/// settings it takes and needs.
const RUNTIME_SECTIONS: &[(&str, &[TableType])] = &[
    (
        "[key_value_store.{label}]",
        &[
            ("sqlite", &["path"], &["path"]),
            ("redis", &["url", "prefix", "timeout"], &["url"]),
        ],
    ),
    (
        "[sqlite_database.{label}]",
        &[("sqlite", &["path"], &["path"])],
    ),
    (
        "[[variable_provider]]",
        &[
            ("env", &["prefix"], &[]),
            ("dotenv", &["path", "prefix"], &["path"]),
            ("directory", &["path"], &["path"]),
        ],
    ),
];

/// One table of a runtime configuration: usually a valid one, now and then with an unknown
/// type, a missing or out-of-place setting, a wrong value or a stray key.
fn runtime_table() -> impl Strategy<Value = String> {
    (select(RUNTIME_SECTIONS), any::<prop::sample::Index>()).prop_flat_map(
        |((header, kinds), pick)| {
            let (kind, takes, needs) = kinds[pick.index(kinds.len())];
            let setting = move |name: &'static str, value: BoxedStrategy<String>| {
                let present = if needs.contains(&name) {
                    mostly(Just(true), Just(false))
                } else if takes.contains(&name) {
                    any::<bool>().boxed()
                } else {
                    mostly(Just(false), Just(true))
                };
                (present, value).prop_map(move |(present, value)| {
                    if present {
                        format!("{name} = {value}\n")
                    } else {
                        String::new()
                    }
                })
            };
            (
                mostly(
                    select(vec!["default", "cache", "reports"]).prop_map(String::from),
                    prop_oneof![
                        select(vec!["", "é", "a.b"]).prop_map(String::from),
                        any_text()
                    ],
                ),
                mostly(
                    Just(kind.to_string()),
                    select(vec![
                        "sqlite",
                        "redis",
                        "env",
                        "dotenv",
                        "directory",
                        "vault",
                        "",
                    ])
                    .prop_map(String::from),
                ),
                setting(
                    "path",
                    mostly(
                        select(vec!["data/kv.sqlite", "/abs/x.sqlite", "prod.env"])
                            .prop_map(quoted),
                        any_value(),
                    ),
                ),
                setting(
                    "url",
                    mostly(Just(quoted("redis://127.0.0.1:6379")), any_value()),
                ),
                setting(
                    "prefix",
                    mostly("[A-Z_]{0,6}".prop_map(|p| quoted(&p)), any_value()),
                ),
                setting("timeout", duration_value()),
                sometimes(stray_line()),
            )
                .prop_map(move |(label, kind, path, url, prefix, timeout, stray)| {
                    let mut t = header.replace("{label}", &quoted(&label));
                    t += &format!("\ntype = {}\n", quoted(&kind));
                    t += &[path, url, prefix, timeout].concat();
                    t += &stray.unwrap_or_default();
                    t
                })
        },
    )
}

fn check_runtime_config(text: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runtime-config.toml");
    std::fs::write(&file, text).unwrap();
    if let Err(err) = RuntimeConfig::load(&file) {
        check_error(&err, &file, text)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1_500))]

    #[test]
    fn runtime_configs_of_random_text_never_panic(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            any_text().prop_map(String::into_bytes),
            toml_soup(RUNTIME_WORDS).prop_map(String::into_bytes),
        ],
    ) {
        check_runtime_config(&bytes)?;
    }

    #[test]
    fn near_valid_runtime_configs_load_or_point_at_the_mistake(
        text in prop::collection::vec(runtime_table(), 0..4)
            .prop_map(|tables| tables.concat())
            .prop_flat_map(|text| prop_oneof![6 => Just(text.clone()), 1 => mutate(text)]),
    ) {
        check_runtime_config(text.as_bytes())?;
    }
}
