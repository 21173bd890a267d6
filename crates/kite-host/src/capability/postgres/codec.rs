//! PostgreSQL's binary wire formats for the types `spin:postgres@4` carries (dates and
//! times, uuid, json, numeric, ranges, one-dimensional arrays, intervals), both ways, without
//! a date, decimal or uuid library: each is a few fixed-width integers.

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) type Date = (i32, u8, u8);
pub(crate) type Time = (u8, u8, u8, u32);
pub(crate) type DateTime = (i32, u8, u8, u8, u8, u8, u32);

pub(crate) fn decode_date(days: i32) -> Date {
    let (year, month, day) = civil_from_days(i64::from(days) + PG_EPOCH_DAYS);
    (year as i32, month as u8, day as u8)
}

pub(crate) fn encode_date((year, month, day): Date) -> Result<i32, String> {
    check_date(year, month, day)?;
    let days = days_from_civil(year.into(), month.into(), day.into()) - PG_EPOCH_DAYS;
    i32::try_from(days).map_err(|_| format!("date {year}-{month}-{day} is out of range"))
}

fn check_date(year: i32, month: u8, day: u8) -> Result<(), String> {
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && (-4713..=294_276).contains(&year);
    if valid {
        Ok(())
    } else {
        Err(format!("{year}-{month}-{day} is not a date"))
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub(crate) fn decode_time(micros: i64) -> Time {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let nanos = (micros.rem_euclid(MICROS_PER_SECOND) * 1000) as u32;
    (
        (seconds / 3600) as u8,
        (seconds / 60 % 60) as u8,
        (seconds % 60) as u8,
        nanos,
    )
}

pub(crate) fn encode_time((hour, minute, second, nanos): Time) -> Result<i64, String> {
    if hour > 23 || minute > 59 || second > 59 || nanos >= 1_000_000_000 {
        return Err(format!(
            "{hour}:{minute}:{second}.{nanos} is not a time of day"
        ));
    }
    Ok(
        (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * MICROS_PER_SECOND
            + i64::from(nanos / 1000),
    )
}

/// A timestamp (microseconds since 2000-01-01 00:00 UTC) as date and time.
pub(crate) fn decode_datetime(micros: i64) -> DateTime {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let (year, month, day) = decode_date(days as i32);
    let (hour, minute, second, nanos) = decode_time(micros.rem_euclid(MICROS_PER_DAY));
    (year, month, day, hour, minute, second, nanos)
}

pub(crate) fn encode_datetime(
    (year, month, day, hour, minute, second, nanos): DateTime,
) -> Result<i64, String> {
    let days = i64::from(encode_date((year, month, day))?);
    Ok(days * MICROS_PER_DAY + encode_time((hour, minute, second, nanos))?)
}

/// Unix seconds as PostgreSQL microseconds.
pub(crate) fn encode_unix_seconds(seconds: i64) -> Result<i64, String> {
    seconds
        .checked_sub(PG_EPOCH_DAYS * 86_400)
        .and_then(|s| s.checked_mul(MICROS_PER_SECOND))
        .ok_or_else(|| format!("timestamp {seconds} is out of range"))
}

pub(crate) fn decode_uuid(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() != 16 {
        return Err("a uuid has 16 bytes".into());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

pub(crate) fn encode_uuid(text: &str) -> Result<Vec<u8>, String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{text:?} is not a uuid"));
    }
    Ok((0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default())
        .collect())
}

/// A `numeric` in PostgreSQL's binary form (base-10000 digits) as decimal text.
pub(crate) fn decode_numeric(bytes: &[u8]) -> Result<String, String> {
    let mut reader = Reader(bytes);
    let count = reader.i16()?;
    let weight = i32::from(reader.i16()?);
    let sign = reader.u16()?;
    let scale = usize::from(reader.u16()?);
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..count).map(|_| reader.i16()).collect::<Result<_, _>>()?;
    let mut integer = String::new();
    for position in 0..=weight.max(-1) {
        let digit = digits.get(position as usize).copied().unwrap_or(0);
        if integer.is_empty() {
            if digit != 0 {
                integer = digit.to_string();
            }
        } else {
            integer.push_str(&format!("{digit:04}"));
        }
    }
    if integer.is_empty() {
        integer.push('0');
    }
    let mut fraction = String::new();
    let mut position = weight + 1;
    while fraction.len() < scale {
        let digit = if position < 0 {
            0
        } else {
            digits.get(position as usize).copied().unwrap_or(0)
        };
        fraction.push_str(&format!("{digit:04}"));
        position += 1;
    }
    fraction.truncate(scale);
    let negative = if sign == 0x4000 { "-" } else { "" };
    Ok(if scale == 0 {
        format!("{negative}{integer}")
    } else {
        format!("{negative}{integer}.{fraction}")
    })
}

/// Decimal text (`-12.3400`, `1e5` is refused) in PostgreSQL's binary `numeric` form.
pub(crate) fn encode_numeric(text: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("{text:?} is not a decimal number");
    let (negative, unsigned) = match text.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.trim().strip_prefix('+').unwrap_or(text.trim())),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (integer.is_empty() && fraction.is_empty()) || !all_digits(integer) || !all_digits(fraction)
    {
        return Err(bad());
    }
    let integer = integer.trim_start_matches('0');
    let scale = u16::try_from(fraction.len()).map_err(|_| bad())?;
    // Integer digits padded on the left, fraction digits on the right, to groups of four.
    let integer_padded = format!("{}{integer}", "0".repeat((4 - integer.len() % 4) % 4));
    let fraction_padded = format!("{fraction}{}", "0".repeat((4 - fraction.len() % 4) % 4));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0))
            .collect()
    };
    let integer_groups = group(&integer_padded);
    let mut digits: Vec<i16> = integer_groups.clone();
    digits.extend(group(&fraction_padded));
    let mut weight = integer_groups.len() as i32 - 1;
    // Leading and trailing zero groups are not sent.
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend((digits.len() as i16).to_be_bytes());
    out.extend((weight as i16).to_be_bytes());
    out.extend(
        (if negative && !digits.is_empty() {
            0x4000u16
        } else {
            0
        })
        .to_be_bytes(),
    );
    out.extend(scale.to_be_bytes());
    for digit in digits {
        out.extend(digit.to_be_bytes());
    }
    Ok(out)
}

/// A range's bounds: `None` for unbounded, else the bound's bytes and whether it is included.
pub(crate) type RawBound<'a> = Option<(&'a [u8], bool)>;

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// A range's lower and upper bounds; an empty range has none (`None`).
pub(crate) fn decode_range(bytes: &[u8]) -> Result<Option<(RawBound<'_>, RawBound<'_>)>, String> {
    let mut reader = Reader(bytes);
    let flags = reader.u8()?;
    if flags & RANGE_EMPTY != 0 {
        return Ok(None);
    }
    let lower = if flags & RANGE_LB_INF != 0 {
        None
    } else {
        Some((reader.sized()?, flags & RANGE_LB_INC != 0))
    };
    let upper = if flags & RANGE_UB_INF != 0 {
        None
    } else {
        Some((reader.sized()?, flags & RANGE_UB_INC != 0))
    };
    Ok(Some((lower, upper)))
}

pub(crate) fn encode_range(
    lower: Option<(Vec<u8>, bool)>,
    upper: Option<(Vec<u8>, bool)>,
) -> Vec<u8> {
    let mut flags = 0;
    match &lower {
        None => flags |= RANGE_LB_INF,
        Some((_, true)) => flags |= RANGE_LB_INC,
        Some(_) => {}
    }
    match &upper {
        None => flags |= RANGE_UB_INF,
        Some((_, true)) => flags |= RANGE_UB_INC,
        Some(_) => {}
    }
    let mut out = vec![flags];
    for (bytes, _) in lower.iter().chain(upper.iter()) {
        out.extend((bytes.len() as i32).to_be_bytes());
        out.extend(bytes);
    }
    out
}

/// The elements of a one-dimensional array (`None` for SQL NULL); an empty array has none.
pub(crate) fn decode_array(bytes: &[u8]) -> Result<Vec<Option<&[u8]>>, String> {
    let mut reader = Reader(bytes);
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_type = reader.u32()?;
    if dimensions == 0 {
        return Ok(Vec::new());
    }
    if dimensions != 1 {
        return Err("only one-dimensional arrays are supported".into());
    }
    let length = reader.i32()?;
    let _lower_bound = reader.i32()?;
    (0..length)
        .map(|_| {
            let size = reader.i32()?;
            if size < 0 {
                Ok(None)
            } else {
                reader.take(size as usize).map(Some)
            }
        })
        .collect()
}

pub(crate) fn encode_array(element_type: u32, elements: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(1i32.to_be_bytes());
    out.extend(i32::from(elements.iter().any(Option::is_none)).to_be_bytes());
    out.extend(element_type.to_be_bytes());
    out.extend((elements.len() as i32).to_be_bytes());
    out.extend(1i32.to_be_bytes());
    for element in elements {
        match element {
            None => out.extend((-1i32).to_be_bytes()),
            Some(bytes) => {
                out.extend((bytes.len() as i32).to_be_bytes());
                out.extend(bytes);
            }
        }
    }
    out
}

/// Reads big-endian fields from a value's bytes, failing (not panicking) when they run out.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("the value is shorter than its type says".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().unwrap_or([0; N]))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A length-prefixed field.
    fn sized(&mut self) -> Result<&'a [u8], String> {
        let size = self.i32()?;
        let size = usize::try_from(size).map_err(|_| "a negative length".to_string())?;
        self.take(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_across_eras() {
        for date in [
            (2000, 1, 1),
            (1970, 1, 1),
            (2024, 2, 29),
            (1, 1, 1),
            (-44, 3, 15),
            (9999, 12, 31),
        ] {
            assert_eq!(decode_date(encode_date(date).unwrap()), date);
        }
        assert_eq!(encode_date((2000, 1, 1)).unwrap(), 0);
        assert_eq!(encode_date((2000, 1, 2)).unwrap(), 1);
        assert!(encode_date((2023, 2, 29)).is_err());
        assert!(encode_date((2023, 13, 1)).is_err());
    }

    #[test]
    fn times_and_timestamps() {
        let time = (23, 59, 58, 123_456_000);
        assert_eq!(decode_time(encode_time(time).unwrap()), time);
        let moment = (1999, 12, 31, 23, 0, 1, 5_000);
        assert_eq!(decode_datetime(encode_datetime(moment).unwrap()), moment);
        assert_eq!(encode_unix_seconds(946_684_800).unwrap(), 0);
        assert!(encode_time((24, 0, 0, 0)).is_err());
    }

    #[test]
    fn numerics_round_trip() {
        for text in [
            "0",
            "1",
            "-1",
            "10000",
            "12345.678",
            "0.0001",
            "-0.5",
            "99999999.00000001",
            "123.4500",
        ] {
            let encoded = encode_numeric(text).unwrap();
            assert_eq!(decode_numeric(&encoded).unwrap(), text, "{text}");
        }
        assert_eq!(
            decode_numeric(&encode_numeric("007.10").unwrap()).unwrap(),
            "7.10"
        );
        for bad in ["", "1e5", "1.2.3", "abc", "-"] {
            assert!(encode_numeric(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uuids_ranges_and_arrays() {
        let id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(decode_uuid(&encode_uuid(id).unwrap()).unwrap(), id);
        assert!(encode_uuid("nope").is_err());
        let range = encode_range(Some((7i32.to_be_bytes().to_vec(), true)), None);
        let (lower, upper) = decode_range(&range).unwrap().unwrap();
        assert_eq!(lower, Some((&7i32.to_be_bytes()[..], true)));
        assert_eq!(upper, None);
        let array = encode_array(23, &[Some(1i32.to_be_bytes().to_vec()), None]);
        let elements = decode_array(&array).unwrap();
        assert_eq!(elements, vec![Some(&1i32.to_be_bytes()[..]), None]);
        assert!(decode_array(&array[..10]).is_err());
    }
}
