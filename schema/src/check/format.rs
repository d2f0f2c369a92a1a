//! The formats checked (`date`, `time`, `date-time`, `email`, `hostname`, `ipv4`, `ipv6`,
//! `uri`, `uuid`): their names and their parsers, written to accept exactly what the
//! `jsonschema` crate accepts (the fidelity tests compare the two).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{fail, Check, Path};

/// The formats checked (others are annotations, as in draft 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `date`: RFC 3339 full-date.
    Date,
    /// `time`: RFC 3339 full-time.
    Time,
    /// `date-time`: RFC 3339.
    DateTime,
    /// `email`: RFC 5321 mailbox (dot-atom or quoted local part; host name or address literal).
    Email,
    /// `hostname`: RFC 1123.
    Hostname,
    /// `ipv4`: dotted quad, no leading zeros.
    Ipv4,
    /// `ipv6`: RFC 4291 text form.
    Ipv6,
    /// `uri`: RFC 3986 absolute URI (with a scheme).
    Uri,
    /// `uuid`: hyphenated, any version.
    Uuid,
}

impl Format {
    /// Every format checked, in declaration order.
    pub const ALL: [Format; 9] = [
        Format::Date,
        Format::Time,
        Format::DateTime,
        Format::Email,
        Format::Hostname,
        Format::Ipv4,
        Format::Ipv6,
        Format::Uri,
        Format::Uuid,
    ];

    /// The keyword value, or `None` for formats not checked.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "date" => Self::Date,
            "time" => Self::Time,
            "date-time" => Self::DateTime,
            "email" => Self::Email,
            "hostname" => Self::Hostname,
            "ipv4" => Self::Ipv4,
            "ipv6" => Self::Ipv6,
            "uri" => Self::Uri,
            "uuid" => Self::Uuid,
            _ => return None,
        })
    }

    /// The format's name in schemas.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Date => "date",
            Self::Time => "time",
            Self::DateTime => "date-time",
            Self::Email => "email",
            Self::Hostname => "hostname",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
            Self::Uri => "uri",
            Self::Uuid => "uuid",
        }
    }

    /// Whether `s` is in this format.
    #[must_use]
    pub fn accepts(self, s: &str) -> bool {
        match self {
            Self::Date => is_date(s),
            Self::Time => is_time(s),
            Self::DateTime => s
                .find(['T', 't'])
                .is_some_and(|t| is_date(&s[..t]) && is_time(&s[t + 1..])),
            Self::Email => is_email(s),
            Self::Hostname => is_hostname(s),
            Self::Ipv4 => s.parse::<Ipv4Addr>().is_ok(),
            Self::Ipv6 => s.parse::<Ipv6Addr>().is_ok(),
            Self::Uri => is_uri(s),
            Self::Uuid => uuid::Uuid::try_parse(s).is_ok() && s.len() == 36,
        }
    }
}

/// `format`
pub fn format(s: &str, path: &Path<'_>, format: Format) -> Check {
    if format.accepts(s) {
        Ok(())
    } else {
        Err(fail(
            path,
            "format",
            format!("{s:?} is not a valid {}", format.name()),
        ))
    }
}

/// `n` ASCII digits as a number. Works on bytes: the callers cut fixed positions out of
/// untrusted text, and a byte range never panics where a `str` range inside a character
/// would.
fn digits(b: &[u8], n: usize) -> Option<u32> {
    (b.len() == n && b.iter().all(u8::is_ascii_digit))
        .then(|| b.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0')))
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&b[..4], 4), digits(&b[5..7], 2), digits(&b[8..], 2))
    else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(sec)) =
        (digits(&b[..2], 2), digits(&b[3..5], 2), digits(&b[6..8], 2))
    else {
        return false;
    };
    // Bytes 0..8 are ASCII (checked above): 8 is a character boundary.
    let mut rest = &s[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    let offset: i64 = match rest.as_bytes().first() {
        Some(b'Z' | b'z') if rest.len() == 1 => 0,
        Some(sign @ (b'+' | b'-')) if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let r = rest.as_bytes();
            let (Some(oh), Some(om)) = (digits(&r[1..3], 2), digits(&r[4..], 2)) else {
                return false;
            };
            if oh > 23 || om > 59 {
                return false;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return false,
    };
    if h > 23 || m > 59 || sec > 60 {
        return false;
    }
    if sec == 60 {
        // A leap second exists only at 23:59:60 UTC.
        let utc = (i64::from(h * 60 + m) - offset).rem_euclid(24 * 60);
        return utc == 23 * 60 + 59;
    }
    true
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.ends_with('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_email(s: &str) -> bool {
    let Some(at) = s.rfind('@') else {
        return false;
    };
    let (local, domain) = (&s[..at], &s[at + 1..]);
    let local_ok = if let Some(quoted) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        let mut escaped = false;
        quoted.bytes().all(|b| {
            let ok = escaped || (b != b'"' && (b == b' ' || b.is_ascii_graphic()));
            escaped = !escaped && b == b'\\';
            ok
        }) && !escaped
    } else {
        !local.is_empty()
            && local.len() <= 64
            && local.split('.').all(|atom| {
                !atom.is_empty()
                    && atom
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
            })
    };
    if !local_ok {
        return false;
    }
    match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        Some(literal) => match literal.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                literal[5..].parse::<Ipv6Addr>().is_ok()
            }
            _ => literal.parse::<Ipv4Addr>().is_ok(),
        },
        None => is_hostname(domain),
    }
}

fn is_uri(s: &str) -> bool {
    // scheme ":" hier-part [ "?" query ] [ "#" fragment ], checked character by character.
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return false;
    }
    let rest = &s.as_bytes()[colon + 1..];
    let mut i = 0;
    let mut fragment = false;
    let mut authority_end = None;
    if rest.starts_with(b"//") {
        let end = rest[2..]
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#'))
            .map_or(rest.len(), |p| p + 2);
        authority_end = Some(end);
    }
    while i < rest.len() {
        let b = rest[i];
        let in_authority = authority_end.is_some_and(|end| i < end);
        let ok = match b {
            b'%' => {
                let hex = rest
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                if hex {
                    i += 2;
                }
                hex
            }
            b'#' if !fragment => {
                fragment = true;
                true
            }
            b'[' | b']' => in_authority,
            b'#' => false,
            b if b.is_ascii_alphanumeric() => true,
            b'-' | b'.' | b'_' | b'~' | b':' | b'/' | b'?' | b'@' | b'!' | b'$' | b'&' | b'\''
            | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => true,
            _ => false,
        };
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}
