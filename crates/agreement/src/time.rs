//! RFC 3339 UTC timestamps (`2027-06-30T00:00:00Z`, optional fraction) to Unix seconds, and
//! back.

/// Seconds since the Unix epoch of an RFC 3339 timestamp in UTC (`Z` suffix). A fraction of a
/// second is accepted and truncated.
pub(crate) fn parse_rfc3339_utc(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an RFC 3339 UTC time like 2027-06-30T00:00:00Z");
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(bad());
    }
    let shape_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !shape_ok {
        return Err(bad());
    }
    let rest = &text[19..];
    let Some(fraction) = rest.strip_suffix('Z') else {
        return Err(bad());
    };
    if !fraction.is_empty() {
        let digits = fraction.strip_prefix('.').ok_or_else(bad)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    let field = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &text[range];
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse::<i64>().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!("{text:?} is not a valid calendar time"));
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days in `month` (1–12) of the proleptic Gregorian `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day count from 1970-01-01 (H. Hinnant's
/// algorithm, the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, or `None` outside years 0000–9999 (which
/// [`parse_rfc3339_utc`] reads back to the same instant).
pub(crate) fn format_rfc3339_utc(unix: i64) -> Option<String> {
    let days = unix.div_euclid(86_400);
    let second_of_day = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::{format_rfc3339_utc, parse_rfc3339_utc};

    #[test]
    fn formats_what_it_parses() {
        for text in [
            "0000-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:00:00Z",
            "2026-11-26T00:00:00Z",
            "2027-06-30T00:00:00Z",
            "2100-03-01T08:09:10Z",
            "9999-12-31T23:59:59Z",
        ] {
            let unix = parse_rfc3339_utc(text).unwrap();
            assert_eq!(format_rfc3339_utc(unix).as_deref(), Some(text), "{unix}");
        }
        for day in (-719_528..=2_932_896).step_by(997) {
            let unix = day * 86_400 + 3_661;
            let text = format_rfc3339_utc(unix).unwrap();
            assert_eq!(parse_rfc3339_utc(&text), Ok(unix), "{text}");
        }
        assert_eq!(format_rfc3339_utc(253_402_300_800), None);
        assert_eq!(format_rfc3339_utc(i64::MIN / 2), None);
    }

    #[test]
    fn known_instants() {
        let cases = [
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59Z", -1),
            ("2000-02-29T12:00:00Z", 951_825_600),
            ("2001-09-09T01:46:40Z", 1_000_000_000),
            ("2027-06-30T00:00:00Z", 1_814_313_600),
            ("2038-01-19T03:14:07Z", 2_147_483_647),
            ("2038-01-19T03:14:07.999Z", 2_147_483_647),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
        ];
        for (text, unix) in cases {
            assert_eq!(parse_rfc3339_utc(text), Ok(unix), "{text}");
        }
    }

    #[test]
    fn rejects_non_utc_and_malformed() {
        for text in [
            "",
            "2027-06-30",
            "2027-06-30T00:00:00",
            "2027-06-30T00:00:00+08:00",
            "2027-06-30T00:00:00+00:00",
            "2027-06-30 00:00:00Z",
            "2027-06-30t00:00:00z",
            "2027-06-30T00:00:00.Z",
            "2027-06-30T00:00:00.1xZ",
            "2027-6-30T00:00:00Z",
            "+027-06-30T00:00:00Z",
            "2027-06-30T00:00:00ZZ",
            "２027-06-30T00:00:00Z",
        ] {
            assert!(parse_rfc3339_utc(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn rejects_impossible_dates() {
        for text in [
            "2027-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2027-13-01T00:00:00Z",
            "2027-00-01T00:00:00Z",
            "2027-04-31T00:00:00Z",
            "2027-06-00T00:00:00Z",
            "2027-06-30T24:00:00Z",
            "2027-06-30T00:60:00Z",
            "2027-06-30T00:00:60Z",
        ] {
            let err = parse_rfc3339_utc(text).unwrap_err();
            assert!(err.contains("not a valid calendar time"), "{text}: {err}");
        }
    }
}
