//! Value formats shared by the record and schema rules: datetimes, dates, object ids, email
//! addresses, domain names and URLs. All are pure functions on `&str`.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

const DATETIME_Z: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
const DATETIME_OFFSET: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
);
const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Maximum length of an `objectId`, in characters (all allowed characters are ASCII).
pub const MAX_OBJECT_ID_LEN: usize = 64;

/// True when `b` has the exact shape `YYYY-MM-DD` (digits and dashes only), which keeps the
/// `time` parser from accepting a signed or shorter year.
fn date_shape(b: &[u8]) -> bool {
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// Parses a strict ISO-8601 datetime: `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM`,
/// uppercase `T` and `Z`, no fractional seconds, a real calendar date and time of day
/// (hour 00..=23, second 00..=59). Calendar checks are the `time` crate's.
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if !date_shape(b) {
        return None;
    }
    match b.len() {
        20 if b[19] == b'Z' => PrimitiveDateTime::parse(s, DATETIME_Z)
            .ok()
            .map(PrimitiveDateTime::assume_utc),
        25 => OffsetDateTime::parse(s, DATETIME_OFFSET).ok(),
        _ => None,
    }
}

/// Parses a strict `YYYY-MM-DD` calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || !date_shape(b) {
        return None;
    }
    Date::parse(s, DATE).ok()
}

/// The `objectId` rule: at most 64 characters, either only `[A-Za-z0-9_-]` or a valid email address.
pub fn is_object_id(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_OBJECT_ID_LEN {
        return false;
    }
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        || is_email(s)
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c) || !c.is_ascii()
}

/// A pragmatic email check: `local@domain` with a dot-atom local part (RFC 5322 `atext`,
/// non-ASCII letters allowed, no leading, trailing or double dot, at most 64 bytes) and a
/// domain name of at least two labels (see [`is_domain`]); at most 254 bytes in all.
/// Quoted local parts and IP-literal domains are not accepted.
pub fn is_email(s: &str) -> bool {
    if s.len() > 254 {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    if !local.chars().all(|c| c == '.' || is_atext(c)) {
        return false;
    }
    is_domain(domain)
}

fn is_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric()))
}

/// A domain name such as `pbr.com` or `mail.example.co.uk`: at most 253 bytes, at least two
/// dot-separated labels of letters, digits and inner hyphens (1..=63 bytes each; non-ASCII
/// letters allowed for internationalized names), and a top-level label that is not all digits.
pub fn is_domain(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let mut labels = 0usize;
    let mut last = "";
    for l in s.split('.') {
        if !is_label(l) {
            return false;
        }
        labels += 1;
        last = l;
    }
    labels >= 2 && !last.bytes().all(|b| b.is_ascii_digit())
}

fn is_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[') {
        // IPv6 literal
        let Some(inner) = inner.strip_suffix(']') else {
            return false;
        };
        return !inner.is_empty()
            && inner.contains(':')
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !h.is_empty() && h.len() <= 253 && h.split('.').all(is_label)
}

/// An absolute `http://` or `https://` URL (scheme case-insensitive) with a host name, IPv4
/// or bracketed IPv6 host, an optional decimal port, and no whitespace, control characters or
/// `"<>\` anywhere.
pub fn is_http_url(s: &str) -> bool {
    let b = s.as_bytes();
    let rest = if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"http://") {
        &s[7..]
    } else if b.len() > 8 && b[..8].eq_ignore_ascii_case(b"https://") {
        &s[8..]
    } else {
        return false;
    };
    if rest
        .bytes()
        .any(|c| c <= b' ' || c == 0x7f || matches!(c, b'"' | b'<' | b'>' | b'\\'))
    {
        return false;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let (host, port) = if hostport.starts_with('[') {
        match hostport.find(']') {
            Some(i) => (&hostport[..=i], &hostport[i + 1..]),
            None => return false,
        }
    } else {
        match hostport.rfind(':') {
            Some(i) => (&hostport[..i], &hostport[i..]),
            None => (hostport, ""),
        }
    };
    if !port.is_empty() {
        let Some(digits) = port.strip_prefix(':') else {
            return false;
        };
        if digits.is_empty()
            || digits.len() > 5
            || !digits.bytes().all(|c| c.is_ascii_digit())
            || digits.parse::<u32>().map_or(true, |p| p > 65535)
        {
            return false;
        }
    }
    is_host(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        let ok = [
            ("2019-01-03T23:45:57+01:00", 1546555557),
            ("2019-01-03T22:45:57Z", 1546555557),
            ("2022-02-04T18:24:59Z", 1644000299),
            ("2020-02-29T00:00:00-05:30", 1582954200),
            ("1970-01-01T00:00:00Z", 0),
        ];
        for (s, ts) in ok {
            assert_eq!(parse_datetime(s).map(|d| d.unix_timestamp()), Some(ts), "{s}");
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
        for s in ["2023-02-29", "2022-9-04", "2022-09-04T00:00:00Z", "20220904", "2022/09/04", "-022-09-04"] {
            assert!(parse_date(s).is_none(), "{s}");
        }
    }

    #[test]
    fn object_ids() {
        for s in ["5ybyh6n6n65", "user1_Id_In_The_CRM", "a-b_c", "8608553", "john.doe@acme.com", &"a".repeat(64)] {
            assert!(is_object_id(s), "{s}");
        }
        for s in ["", "a b", "a.b", "a/b", "ü", "x@y", &"a".repeat(65), "a+b", "a:b"] {
            assert!(!is_object_id(s), "{s}");
        }
        let long_email = format!("{}@acme.com", "a".repeat(55));
        assert!(!is_object_id(&long_email));
    }

    #[test]
    fn emails() {
        for s in ["john.doe@acme.com", "a+tag@sub.example.co.uk", "o'brien@x.io", "üser@exämple.de", "x_y-z@a-b.com"] {
            assert!(is_email(s), "{s}");
        }
        for s in ["", "john", "@acme.com", "john@", "john@acme", "john@@acme.com", "jo hn@acme.com", ".j@acme.com", "j.@acme.com", "j..d@acme.com", "j@-acme.com", "j@acme-.com", "j@acme..com", "j@acme.123", "j@[1.2.3.4]", "\"j\"@acme.com"] {
            assert!(!is_email(s), "{s}");
        }
    }

    #[test]
    fn domains() {
        for s in ["pbr.com", "pbr.gov", "a.b.c.d", "xn--bcher-kva.ch", "bücher.de", "1.example.com"] {
            assert!(is_domain(s), "{s}");
        }
        for s in ["", "pbr", "pbr.", ".pbr.com", "pbr..com", "-pbr.com", "pbr-.com", "http://pbr.com", "pbr.com/x", "p b.com", "1.2.3.4", "*.pbr.com"] {
            assert!(!is_domain(s), "{s}");
        }
    }

    #[test]
    fn urls() {
        for s in ["https://crm.com/accounts/5ybyh6n6n65", "http://crm.com/deals/8608553", "HTTPS://crm.com", "http://localhost:8080/x?y=1#z", "http://user:pw@10.0.0.1/", "http://[::1]:80/", "https://crm.com?x"] {
            assert!(is_http_url(s), "{s}");
        }
        for s in ["", "crm.com/accounts", "ftp://crm.com", "https://", "https:///x", "https://crm .com", "https://crm.com/a b", "https://crm.com:99999/", "https://crm.com:x/", "http://-x.com", "mailto:a@b.com", "https://[::1/", "javascript:alert(1)"] {
            assert!(!is_http_url(s), "{s}");
        }
    }
}
