//! Value formats shared by the record and schema rules: datetimes, dates, object ids, email
//! addresses, domain names and URLs. All are pure functions on `&str`.

use std::fmt::Write;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Byte classes, one bit each, looked up in [`CLASS`].
const ID: u8 = 1; // [A-Za-z0-9_-]: objectId characters
const ATEXT: u8 = 2; // RFC 5322 atext and '.', plus non-ASCII bytes (RFC 6531)
const LABEL: u8 = 4; // [A-Za-z0-9-] and non-ASCII bytes: domain label characters
const URL_BAD: u8 = 8; // never in a URL: controls, space, DEL, `"<>\`

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b.is_ascii_alphanumeric() {
            c |= ID | ATEXT | LABEL;
        }
        if b >= 0x80 {
            c |= ATEXT | LABEL;
        }
        if b <= b' ' || b == 0x7f || b == b'"' || b == b'<' || b == b'>' || b == b'\\' {
            c |= URL_BAD;
        }
        match b {
            b'-' => c |= ID | ATEXT | LABEL,
            b'_' => c |= ID | ATEXT,
            b'.' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'/' | b'=' | b'?'
            | b'^' | b'`' | b'{' | b'|' | b'}' | b'~' => c |= ATEXT,
            _ => {}
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn all_in(b: &[u8], class: u8) -> bool {
    b.iter().all(|&c| CLASS[c as usize] & class != 0)
}

/// Two ASCII digits at `b[i..i + 2]` as a number, or None.
fn two_digits(b: &[u8], i: usize) -> Option<u8> {
    let (h, l) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (h < 10 && l < 10).then(|| h * 10 + l)
}

/// `YYYY-MM-DD` at the start of `b` (exact shape: digits and dashes only; no sign, no
/// short year), checked against the calendar by `time`.
fn date_prefix(b: &[u8]) -> Option<Date> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::from(two_digits(b, 0)?) * 100 + i32::from(two_digits(b, 2)?);
    let month = Month::try_from(two_digits(b, 5)?).ok()?;
    Date::from_calendar_date(year, month, two_digits(b, 8)?).ok()
}

/// Parses a strict ISO-8601 datetime: `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM`,
/// uppercase `T` and `Z`, no fractional seconds, a real calendar date and time of day
/// (hour 00..=23, second 00..=59), and an offset of at most ±18:00 (Java's limit, so
/// Gong's).
///
/// The fixed layout is read by position; every range and calendar check (month lengths,
/// leap years, hours, seconds, offsets) is the `time` crate's. This is about ten times
/// faster than a `time` format description and accepts exactly the same strings (see the
/// property test `datetime_matches_format_description`).
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    let offset = match (b.len(), b.get(19)) {
        (20, Some(b'Z')) => UtcOffset::UTC,
        (25, Some(sign @ (b'+' | b'-'))) => {
            if b[22] != b':' {
                return None;
            }
            let (h, m) = (two_digits(b, 20)? as i8, two_digits(b, 23)? as i8);
            // Java's parser, Gong's, takes offsets up to ±18:00 only.
            if m > 59 || h > 18 || (h == 18 && m > 0) {
                return None;
            }
            let (h, m) = if *sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).ok()?
        }
        _ => return None,
    };
    if b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = date_prefix(b)?;
    let time = Time::from_hms(two_digits(b, 11)?, two_digits(b, 14)?, two_digits(b, 17)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// `text` with every control character (C0, DEL and C1) written as `\uXXXX`, so that it
/// can be stored in any database text column and shown on a terminal; unchanged (and not
/// copied) when it has none.
pub fn escape_controls(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// A timestamp as Intake writes it: ISO-8601 UTC with milliseconds,
/// `2024-05-01T10:00:00.000Z`.
pub fn format_timestamp(unix_secs: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Unix milliseconds as Intake writes timestamps (UTC, milliseconds).
pub fn format_timestamp_ms(unix_ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A timestamp as Intake reads it (`asOf`, `since`, ...): an ISO-8601 datetime with `Z` or
/// `±HH:MM`, fractional seconds allowed (RFC 3339). Returns whole unix seconds, rounded
/// down: versions carry whole seconds, so "at most T" keeps the same versions.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Parses a strict `YYYY-MM-DD` calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    if s.len() != 10 {
        return None;
    }
    date_prefix(s.as_bytes())
}

/// Maximum length of an `objectId`, in characters (all allowed characters are ASCII).
pub const MAX_OBJECT_ID_LEN: usize = 64;

/// The `objectId` rule: at most 64 characters, either only `[A-Za-z0-9_-]` or a valid email address.
pub fn is_object_id(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_OBJECT_ID_LEN {
        return false;
    }
    all_in(s.as_bytes(), ID) || is_email(s)
}

/// A pragmatic email check: `local@domain` with a dot-atom local part (RFC 5322 `atext`,
/// non-ASCII characters allowed, no leading, trailing or double dot, at most 64 bytes) and
/// a domain name of at least two labels (see [`is_domain`]); at most 254 bytes in all.
/// Quoted local parts and IP-literal domains are not accepted.
pub fn is_email(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() > 254 {
        return false;
    }
    let Some(at) = b.iter().rposition(|&c| c == b'@') else {
        return false;
    };
    let local = &b[..at];
    if local.is_empty() || local.len() > 64 || local[0] == b'.' || local[at - 1] == b'.' {
        return false;
    }
    let mut prev_dot = false;
    for &c in local {
        if CLASS[c as usize] & ATEXT == 0 || (c == b'.' && prev_dot) {
            return false;
        }
        prev_dot = c == b'.';
    }
    domain_labels(&b[at + 1..]).is_some_and(|(n, numeric_tld)| n >= 2 && !numeric_tld)
}

/// Checks dot-separated host labels (letters, digits, inner hyphens, non-ASCII characters;
/// 1..=63 bytes each; at most 253 bytes in all). Returns the number of labels and whether
/// the last one is all digits.
fn domain_labels(b: &[u8]) -> Option<(usize, bool)> {
    if b.is_empty() || b.len() > 253 {
        return None;
    }
    let mut labels = 0;
    for label in b.split(|&c| c == b'.') {
        let n = label.len();
        if n == 0 || n > 63 || label[0] == b'-' || label[n - 1] == b'-' {
            return None;
        }
        if !all_in(label, LABEL) {
            return None;
        }
        labels += 1;
    }
    let last = b.rsplit(|&c| c == b'.').next().unwrap_or(b);
    Some((labels, last.iter().all(u8::is_ascii_digit)))
}

/// A domain name such as `pbr.com` or `mail.example.co.uk`: at most 253 bytes, at least two
/// dot-separated labels of letters, digits and inner hyphens (1..=63 bytes each; non-ASCII
/// characters allowed for internationalized names), and a top-level label that is not all digits.
pub fn is_domain(s: &str) -> bool {
    domain_labels(s.as_bytes()).is_some_and(|(n, numeric_tld)| n >= 2 && !numeric_tld)
}

fn is_host(h: &[u8]) -> bool {
    if let Some(inner) = h.strip_prefix(b"[") {
        // IPv6 literal
        let Some(inner) = inner.strip_suffix(b"]") else {
            return false;
        };
        return inner.contains(&b':')
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    domain_labels(h).is_some()
}

/// An absolute `http://` or `https://` URL (scheme case-insensitive) with a host name, IPv4
/// or bracketed IPv6 host, an optional decimal port, and no whitespace, control characters or
/// `"<>\` anywhere.
pub fn is_http_url(s: &str) -> bool {
    let b = s.as_bytes();
    let rest = if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"http://") {
        &b[7..]
    } else if b.len() > 8 && b[..8].eq_ignore_ascii_case(b"https://") {
        &b[8..]
    } else {
        return false;
    };
    if rest.iter().any(|&c| CLASS[c as usize] & URL_BAD != 0) {
        return false;
    }
    let end = rest
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = match authority.iter().rposition(|&c| c == b'@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let host_end = if hostport.first() == Some(&b'[') {
        match hostport.iter().position(|&c| c == b']') {
            Some(i) => i + 1,
            None => return false,
        }
    } else {
        hostport
            .iter()
            .rposition(|&c| c == b':')
            .unwrap_or(hostport.len())
    };
    let (host, port) = hostport.split_at(host_end);
    if !port.is_empty() {
        let Some(digits) = port.strip_prefix(b":") else {
            return false;
        };
        if digits.is_empty()
            || digits.len() > 5
            || !digits.iter().all(u8::is_ascii_digit)
            || digits
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
                > 65535
        {
            return false;
        }
    }
    // The WHATWG parser (the `url` crate) has the last word on the host: it refuses what
    // the checks above let through, such as `http://[:]/x` or `http://999.1.1.1/x`.
    is_host(host) && url::Url::parse(s).is_ok_and(|u| u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_written_and_read() {
        assert_eq!(format_timestamp(1_714_557_600), "2024-05-01T10:00:00.000Z");
        assert_eq!(
            parse_timestamp("2024-05-01T10:00:00.000Z"),
            Some(1_714_557_600)
        );
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.999+02:00"),
            Some(1_714_557_600)
        );
        assert_eq!(parse_timestamp("2024-05-01T10:00:00Z"), Some(1_714_557_600));
        for bad in ["2024-05-01", "yesterday", "2024-05-01T10:00Z", ""] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn control_characters_are_escaped_in_texts() {
        assert_eq!(escape_controls("plain [é]".into()), "plain [é]");
        assert_eq!(
            escape_controls("Field [x\u{0}] \t\u{7f}\u{9b}!".into()),
            "Field [x\\u0000] \\u0009\\u007f\\u009b!"
        );
    }

    #[test]
    fn datetimes() {
        let ok = [
            ("2019-01-03T23:45:57+01:00", 1546555557),
            ("2019-01-03T22:45:57Z", 1546555557),
            ("2022-02-04T18:24:59Z", 1643999099),
            ("2020-02-29T00:00:00-05:30", 1582954200),
            ("2020-02-29T00:00:00+18:00", 1582869600),
            ("2020-02-29T00:00:00-18:00", 1582999200),
            ("1970-01-01T00:00:00Z", 0),
        ];
        for (s, ts) in ok {
            assert_eq!(
                parse_datetime(s).map(|d| d.unix_timestamp()),
                Some(ts),
                "{s}"
            );
        }
        let bad = [
            "2019-01-03T23:45:57.000Z",
            "2019-01-03T23:45:57.000+01:00",
            "2019-01-03t23:45:57Z",
            "2019-01-03T23:45:57z",
            "2019-01-03 23:45:57Z",
            "2019-01-03T23:45:57",
            "2019-01-03T24:00:00Z",
            "2019-02-30T10:00:00Z",
            "2019-02-29T10:00:00Z",
            "2019-01-03T23:45:60Z",
            "2019-01-03T23:60:00Z",
            "2019-13-03T23:45:57Z",
            "2019-00-03T23:45:57Z",
            "2019-01-00T23:45:57Z",
            "2019-01-03T23:45Z",
            "2019-01-03T23:45:57+0100",
            "2019-01-03T23:45:57+01",
            "2019-01-03T23:45:57+24:00",
            "2019-01-03T23:45:57-18:01",
            "2019-01-03T23:45:57+19:00",
            "+019-01-03T23:45:57Z",
            "19-01-03T23:45:57Z",
            "2019-1-3T23:45:57Z",
            "2019-01-03",
            "",
            "2019-01-03T23:45:57Z ",
            " 2019-01-03T23:45:57Z",
            "2019-01-03T23:45:57UTC",
        ];
        for s in bad {
            assert!(parse_datetime(s).is_none(), "{s}");
        }
    }

    #[test]
    fn dates() {
        assert!(parse_date("2022-09-04").is_some());
        assert!(parse_date("2024-02-29").is_some());
        for s in [
            "2023-02-29",
            "2022-9-04",
            "2022-09-04T00:00:00Z",
            "20220904",
            "2022/09/04",
            "-022-09-04",
        ] {
            assert!(parse_date(s).is_none(), "{s}");
        }
    }

    #[test]
    fn object_ids() {
        for s in [
            "5ybyh6n6n65",
            "user1_Id_In_The_CRM",
            "a-b_c",
            "8608553",
            "john.doe@acme.com",
            &"a".repeat(64),
        ] {
            assert!(is_object_id(s), "{s}");
        }
        for s in [
            "",
            "a b",
            "a.b",
            "a/b",
            "ü",
            "x@y",
            &"a".repeat(65),
            "a+b",
            "a:b",
        ] {
            assert!(!is_object_id(s), "{s}");
        }
        let long_email = format!("{}@acme.com", "a".repeat(56));
        assert!(!is_object_id(&long_email));
    }

    #[test]
    fn emails() {
        for s in [
            "john.doe@acme.com",
            "a+tag@sub.example.co.uk",
            "o'brien@x.io",
            "üser@exämple.de",
            "x_y-z@a-b.com",
        ] {
            assert!(is_email(s), "{s}");
        }
        for s in [
            "",
            "john",
            "@acme.com",
            "john@",
            "john@acme",
            "john@@acme.com",
            "jo hn@acme.com",
            ".j@acme.com",
            "j.@acme.com",
            "j..d@acme.com",
            "j@-acme.com",
            "j@acme-.com",
            "j@acme..com",
            "j@acme.123",
            "j@[1.2.3.4]",
            "\"j\"@acme.com",
        ] {
            assert!(!is_email(s), "{s}");
        }
    }

    #[test]
    fn domains() {
        for s in [
            "pbr.com",
            "pbr.gov",
            "a.b.c.d",
            "xn--bcher-kva.ch",
            "bücher.de",
            "1.example.com",
        ] {
            assert!(is_domain(s), "{s}");
        }
        for s in [
            "",
            "pbr",
            "pbr.",
            ".pbr.com",
            "pbr..com",
            "-pbr.com",
            "pbr-.com",
            "http://pbr.com",
            "pbr.com/x",
            "p b.com",
            "1.2.3.4",
            "*.pbr.com",
        ] {
            assert!(!is_domain(s), "{s}");
        }
    }

    #[test]
    fn urls() {
        for s in [
            "https://crm.com/accounts/5ybyh6n6n65",
            "http://crm.com/deals/8608553",
            "HTTPS://crm.com",
            "http://localhost:8080/x?y=1#z",
            "http://user:pw@10.0.0.1/",
            "http://[::1]:80/",
            "https://crm.com?x",
        ] {
            assert!(is_http_url(s), "{s}");
        }
        for s in [
            "",
            "crm.com/accounts",
            "ftp://crm.com",
            "https://",
            "https:///x",
            "https://crm .com",
            "https://crm.com/a b",
            "https://crm.com:99999/",
            "https://crm.com:x/",
            "http://-x.com",
            "mailto:a@b.com",
            "https://[::1/",
            "javascript:alert(1)",
            "http://[:]/x",
            "http://999.1.1.1/x",
        ] {
            assert!(!is_http_url(s), "{s}");
        }
    }
}
