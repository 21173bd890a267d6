//! Human-friendly sizes ("64MiB") and durations ("10s") used by manifest limits.
//! Parsing errors say what was expected so the user can fix the value.

use std::time::Duration;

/// Parses a byte size: a number with an optional unit (B, KB, MB, GB, KiB, MiB, GiB).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(size_error(text)),
    };
    let number: u64 = digits.parse().map_err(|_| size_error(text))?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn size_error(text: &str) -> String {
    format!(
        "invalid size {text:?}: expected a whole number with an optional unit \
         (B, KB, MB, GB, KiB, MiB, GiB), e.g. \"64MiB\""
    )
}

/// Parses a duration such as "500ms", "10s" or "2m".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if may_reach_u64_max_seconds(text) {
        return Err(format!("duration {text:?} is too large"));
    }
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}): expected e.g. \"500ms\", \"10s\" or \"2m\"")
    })?;
    if duration.is_zero() {
        return Err(format!("duration {text:?} must be greater than zero"));
    }
    Ok(duration)
}

/// Whether `text` might add up to `u64::MAX` seconds or more. humantime 2.4 panics
/// ("overflow in Duration::new") instead of failing when a sum lands on exactly `u64::MAX`
/// seconds plus one carried second, e.g. "18446744073709551615s 1000000000ns", so such texts
/// must not reach it. Reads numbers and units as humantime does (whitespace inside a number
/// or before its unit is skipped, whitespace ends a unit) and over-estimates: each number
/// counts as one more than its whole part, and a unit humantime does not know as a year.
fn may_reach_u64_max_seconds(text: &str) -> bool {
    const SECOND: u128 = 1_000_000_000;
    let mut chars = text.chars().peekable();
    let mut nanos: u128 = 0;
    while chars.peek().is_some() {
        let (mut number, mut fraction, mut consumed) = (0u128, false, false);
        while let Some(&c) = chars.peek() {
            match c.to_digit(10) {
                Some(digit) if !fraction => {
                    number = number.saturating_mul(10).saturating_add(digit.into())
                }
                Some(_) => {}
                None if c.is_whitespace() => {}
                None if c == '.' && !fraction => fraction = true,
                None => break,
            }
            chars.next();
            consumed = true;
        }
        let mut unit = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphabetic() || *c == 'µ') {
            unit.push(c);
        }
        if !consumed && unit.is_empty() {
            chars.next(); // a character humantime rejects
            continue;
        }
        let per_unit = match unit.as_str() {
            "nanos" | "nsec" | "ns" => 1,
            "usec" | "us" | "µs" => 1_000,
            "millis" | "msec" | "ms" => 1_000_000,
            "seconds" | "second" | "secs" | "sec" | "s" => SECOND,
            "minutes" | "minute" | "min" | "mins" | "m" => 60 * SECOND,
            "hours" | "hour" | "hr" | "hrs" | "h" => 3_600 * SECOND,
            "days" | "day" | "d" => 86_400 * SECOND,
            "weeks" | "week" | "wk" | "wks" | "w" => 604_800 * SECOND,
            "months" | "month" | "M" => 2_630_016 * SECOND,
            _ => 31_557_600 * SECOND, // years, and anything else
        };
        nanos = nanos.saturating_add(number.saturating_add(1).saturating_mul(per_unit));
    }
    nanos >= u128::from(u64::MAX) * SECOND
}

/// Serde adapter: a size given as a string with a unit or as a plain number of bytes.
pub(crate) mod size_serde {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(Some)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                super::parse_size(v).map(Some).map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// Serde adapter: a duration given as a string such as "10s".
pub(crate) mod duration_serde {
    use serde::{de, Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("64XB").unwrap_err().contains("invalid size"));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(
            parse_duration("600000000000ns"),
            Ok(Duration::from_secs(600))
        );
    }

    #[test]
    fn durations_at_the_limit_are_errors_not_panics() {
        // humantime 2.4 panics on these ("overflow in Duration::new").
        for text in [
            "18446744073709551615s 1000000000ns",
            "18446744073709551615s 500000000ns 500000000ns",
            "1000000000ns 18446744073709551615s",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("too large"), "{text}: {err}");
        }
        assert!(parse_duration("18446744073709551615s").is_err());
        assert_eq!(
            parse_duration("9223372036854775807s"),
            Ok(Duration::from_secs(i64::MAX as u64))
        );
    }
}
