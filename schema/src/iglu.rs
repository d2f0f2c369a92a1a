//! Iglu schema URIs and SchemaVer.
//!
//! An event's schema is addressed as `iglu:<vendor>/<name>/<format>/<MODEL>-<REVISION>-<ADDITION>`,
//! for example `iglu:com.example.media/play/jsonschema/1-0-0`. The same four parts are the
//! schema's path in a registry (`<vendor>/<name>/<format>/<version>`), so the parser is strict:
//! a URI that parses can be joined onto a registry root without escaping it.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The `$schema` every Iglu self-describing JSON Schema declares.
pub const SELF_DESC_META: &str =
    "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#";

/// The prefix every Iglu URI starts with.
pub const IGLU_PREFIX: &str = "iglu:";

/// A SchemaVer version: `MODEL-REVISION-ADDITION`.
///
/// ADDITION changes are compatible with all earlier data, REVISION changes may break some,
/// MODEL changes break. `MODEL` starts at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaVer {
    /// Breaking changes.
    pub model: u32,
    /// Changes that may break some earlier data.
    pub revision: u32,
    /// Changes compatible with all earlier data.
    pub addition: u32,
}

impl SchemaVer {
    /// Parses `M-R-A` (no leading zeros, `M >= 1`).
    pub fn parse(s: &str) -> Result<Self, IgluUriError> {
        let mut parts = s.split('-');
        let mut next = |what: &'static str| -> Result<u32, IgluUriError> {
            let part = parts.next().ok_or(IgluUriError::Version(what))?;
            let valid = !part.is_empty()
                && part.len() <= 9
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'));
            if !valid {
                return Err(IgluUriError::Version(what));
            }
            part.parse().map_err(|_| IgluUriError::Version(what))
        };
        let version = SchemaVer {
            model: next("MODEL")?,
            revision: next("REVISION")?,
            addition: next("ADDITION")?,
        };
        if parts.next().is_some() {
            return Err(IgluUriError::Version("exactly three parts"));
        }
        if version.model == 0 {
            return Err(IgluUriError::Version("MODEL starts at 1"));
        }
        Ok(version)
    }
}

impl fmt::Display for SchemaVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.model, self.revision, self.addition)
    }
}

impl FromStr for SchemaVer {
    type Err = IgluUriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A parsed Iglu schema URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaKey {
    /// Reverse-domain vendor, e.g. `com.example.media`.
    pub vendor: String,
    /// Schema name, e.g. `play`.
    pub name: String,
    /// Schema format, `jsonschema` in practice.
    pub format: String,
    /// SchemaVer version.
    pub version: SchemaVer,
}

/// Why a string is not a valid Iglu URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgluUriError {
    /// The URI does not start with `iglu:`. Fix the string: it should look like
    /// `iglu:com.example/name/jsonschema/1-0-0`.
    #[error("schema URI must start with `iglu:` (e.g. `iglu:com.example/name/jsonschema/1-0-0`)")]
    Prefix,
    /// The URI does not have exactly four `/`-separated parts.
    #[error("schema URI must have four parts: iglu:<vendor>/<name>/<format>/<M-R-A>")]
    Parts,
    /// A part is empty or contains characters other than ASCII letters, digits, `-`, `_`
    /// (and `.` inside the vendor, never leading, trailing or doubled).
    #[error("invalid {0} in schema URI: only ASCII letters, digits, `-`, `_` (and single inner `.` in the vendor) are allowed")]
    Part(&'static str),
    /// The version is not SchemaVer `MODEL-REVISION-ADDITION`.
    #[error("invalid SchemaVer version ({0}): expected MODEL-REVISION-ADDITION such as 1-0-0")]
    Version(&'static str),
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn check_vendor(vendor: &str) -> bool {
    !vendor.is_empty()
        && vendor.len() <= 128
        && vendor
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(is_ident_byte))
}

fn check_ident(part: &str) -> bool {
    !part.is_empty() && part.len() <= 128 && part.bytes().all(is_ident_byte)
}

impl SchemaKey {
    /// Parses `iglu:<vendor>/<name>/<format>/<M-R-A>`.
    pub fn parse(uri: &str) -> Result<Self, IgluUriError> {
        let path = uri.strip_prefix(IGLU_PREFIX).ok_or(IgluUriError::Prefix)?;
        Self::from_path(path)
    }

    /// Parses the registry path form `<vendor>/<name>/<format>/<M-R-A>`.
    pub fn from_path(path: &str) -> Result<Self, IgluUriError> {
        let mut parts = path.split('/');
        let (Some(vendor), Some(name), Some(format), Some(version), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(IgluUriError::Parts);
        };
        if !check_vendor(vendor) {
            return Err(IgluUriError::Part("vendor"));
        }
        if !check_ident(name) {
            return Err(IgluUriError::Part("name"));
        }
        if !check_ident(format) {
            return Err(IgluUriError::Part("format"));
        }
        Ok(SchemaKey {
            vendor: vendor.to_owned(),
            name: name.to_owned(),
            format: format.to_owned(),
            version: SchemaVer::parse(version)?,
        })
    }

    /// Checks a URI; allocates only to explain a failure.
    pub fn validate(uri: &str) -> Result<(), IgluUriError> {
        if is_valid_uri(uri) {
            return Ok(());
        }
        // The parser gives the precise reason (the two agree: see the tests).
        Self::parse(uri).map(|_| ())
    }

    /// Reads the `self` block of a self-describing schema document (`{"self": {"vendor",
    /// "name", "format", "version"}}`). `None` when the block or one of its four parts is
    /// missing; `Some(Err)` when the parts do not form a valid key.
    pub fn from_self_block(schema: &serde_json::Value) -> Option<Result<Self, IgluUriError>> {
        let block = schema.get("self")?;
        let part = |k: &str| block.get(k).and_then(serde_json::Value::as_str);
        let (vendor, name, format, version) = (
            part("vendor")?,
            part("name")?,
            part("format")?,
            part("version")?,
        );
        Some(Self::from_path(&format!(
            "{vendor}/{name}/{format}/{version}"
        )))
    }

    /// The registry-relative path: `<vendor>/<name>/<format>/<M-R-A>`.
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.vendor, self.name, self.format, self.version
        )
    }
}

const fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Scans one `/`-terminated part from `i`; returns the index after the `/`, or `usize::MAX`.
const fn scan_part(b: &[u8], mut i: usize, dots: bool) -> usize {
    let start = i;
    let mut label = 0;
    while i < b.len() && b[i] != b'/' {
        if dots && b[i] == b'.' {
            if label == 0 {
                return usize::MAX;
            }
            label = 0;
        } else if ident_byte(b[i]) {
            label += 1;
        } else {
            return usize::MAX;
        }
        i += 1;
    }
    if i == b.len() || label == 0 || i - start > 128 {
        return usize::MAX;
    }
    i + 1
}

/// Scans one SchemaVer number ending at `end` (`-` or the end); `usize::MAX` when invalid.
const fn scan_number(b: &[u8], mut i: usize, end: u8, nonzero: bool) -> usize {
    let start = i;
    while i < b.len() && b[i] != end {
        if !b[i].is_ascii_digit() {
            return usize::MAX;
        }
        i += 1;
    }
    let len = i - start;
    if len == 0
        || len > 9
        || (len > 1 && b[start] == b'0')
        || (nonzero && len == 1 && b[start] == b'0')
    {
        return usize::MAX;
    }
    i
}

/// The same rules as [`SchemaKey::validate`], as a `const fn`: the tracker checks a typed
/// event's constant schema URI at compile time, so `track()` pays nothing for it.
pub const fn is_valid_uri(uri: &str) -> bool {
    let b = uri.as_bytes();
    let prefix = IGLU_PREFIX.as_bytes();
    if b.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if b[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    let mut i = scan_part(b, i, true);
    if i == usize::MAX {
        return false;
    }
    i = scan_part(b, i, false);
    if i == usize::MAX {
        return false;
    }
    i = scan_part(b, i, false);
    if i == usize::MAX {
        return false;
    }
    i = scan_number(b, i, b'-', true);
    if i == usize::MAX || i == b.len() {
        return false;
    }
    i = scan_number(b, i + 1, b'-', false);
    if i == usize::MAX || i == b.len() {
        return false;
    }
    i = scan_number(b, i + 1, b'/', false);
    i == b.len()
}

impl fmt::Display for SchemaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{IGLU_PREFIX}{}/{}/{}/{}",
            self.vendor, self.name, self.format, self.version
        )
    }
}

impl FromStr for SchemaKey {
    type Err = IgluUriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl PartialOrd for SchemaKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SchemaKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.vendor, &self.name, &self.format, self.version).cmp(&(
            &other.vendor,
            &other.name,
            &other.format,
            other.version,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_uris() {
        let key = SchemaKey::parse("iglu:com.example.media/play/jsonschema/1-0-0").unwrap();
        assert_eq!(key.vendor, "com.example.media");
        assert_eq!(key.name, "play");
        assert_eq!(key.format, "jsonschema");
        assert_eq!(
            key.version,
            SchemaVer {
                model: 1,
                revision: 0,
                addition: 0
            }
        );
        assert_eq!(
            key.to_string(),
            "iglu:com.example.media/play/jsonschema/1-0-0"
        );
        assert_eq!(key.path(), "com.example.media/play/jsonschema/1-0-0");
        let key =
            SchemaKey::parse("iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/10-20-300")
                .unwrap();
        assert_eq!(key.version.to_string(), "10-20-300");
        assert!(SchemaKey::parse("iglu:com.acme-corp/ad_click-2/jsonschema/1-0-12").is_ok());
    }

    #[test]
    fn rejects_malformed_uris() {
        use IgluUriError::*;
        let cases: &[(&str, IgluUriError)] = &[
            ("", Prefix),
            ("com.example/play/jsonschema/1-0-0", Prefix),
            ("IGLU:com.example/play/jsonschema/1-0-0", Prefix),
            ("iglu:com.example/play/jsonschema", Parts),
            ("iglu:com.example/play/jsonschema/1-0-0/extra", Parts),
            ("iglu:/play/jsonschema/1-0-0", Part("vendor")),
            ("iglu:../play/jsonschema/1-0-0", Part("vendor")),
            ("iglu:com..example/play/jsonschema/1-0-0", Part("vendor")),
            ("iglu:.com/play/jsonschema/1-0-0", Part("vendor")),
            ("iglu:com./play/jsonschema/1-0-0", Part("vendor")),
            ("iglu:com.exa mple/play/jsonschema/1-0-0", Part("vendor")),
            ("iglu:com.example/../jsonschema/1-0-0", Part("name")),
            ("iglu:com.example/pl%2eay/jsonschema/1-0-0", Part("name")),
            ("iglu:com.example/play\\x/jsonschema/1-0-0", Part("name")),
            ("iglu:com.example/play/json.schema/1-0-0", Part("format")),
            ("iglu:com.example/play/jsonschema/1-0", Version("ADDITION")),
            (
                "iglu:com.example/play/jsonschema/1-0-0-0",
                Version("exactly three parts"),
            ),
            (
                "iglu:com.example/play/jsonschema/0-1-0",
                Version("MODEL starts at 1"),
            ),
            ("iglu:com.example/play/jsonschema/01-0-0", Version("MODEL")),
            (
                "iglu:com.example/play/jsonschema/1-x-0",
                Version("REVISION"),
            ),
            (
                "iglu:com.example/play/jsonschema/1-0-+1",
                Version("ADDITION"),
            ),
            (
                "iglu:com.example/play/jsonschema/1-0-99999999999",
                Version("ADDITION"),
            ),
        ];
        for (uri, expected) in cases {
            assert_eq!(
                SchemaKey::parse(uri).as_ref().err(),
                Some(expected),
                "{uri}"
            );
            assert_eq!(
                SchemaKey::validate(uri).err().as_ref(),
                Some(expected),
                "{uri}"
            );
        }
    }

    #[test]
    fn validate_agrees_with_parse_on_valid_input() {
        for uri in [
            "iglu:a/b/c/1-0-0",
            "iglu:com.example/x_y-z/jsonschema/2-3-4",
            "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/10-20-300",
            "iglu:com.acme-corp/ad_click-2/jsonschema/1-0-12",
            "iglu:x/y/z/999999999-0-0",
        ] {
            assert!(SchemaKey::validate(uri).is_ok());
            assert!(SchemaKey::parse(uri).is_ok());
            assert!(is_valid_uri(uri), "{uri}");
        }
    }

    #[test]
    fn const_check_agrees_with_the_parser_on_mutated_uris() {
        // Start from valid URIs and apply random edits: near-misses of every kind.
        let seeds = [
            "iglu:com.example.media/play/jsonschema/1-0-0",
            "iglu:a/b/c/10-20-30",
            "iglu:x_y/a-b/jsonschema/2-0-11",
        ];
        let alphabet = b"/.-_09aZ:% ";
        let mut x = 0x2545F4914F6CDD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut valid, mut invalid) = (0, 0);
        for round in 0..100_000 {
            let mut s: Vec<u8> = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..(next() % 4) {
                let at = (next() % (s.len() as u64 + 1)) as usize;
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 if at < s.len() => s[at] = c,
                    1 if at < s.len() => {
                        s.remove(at);
                    }
                    _ => s.insert(at, c),
                }
            }
            let s = String::from_utf8(s).unwrap();
            let parsed = SchemaKey::parse(&s).is_ok();
            assert_eq!(is_valid_uri(&s), parsed, "{s}");
            if parsed {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert!(
            valid > 1000 && invalid > 1000,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn reads_self_blocks() {
        let doc = serde_json::json!({"self": {"vendor": "com.acme", "name": "ok", "format": "jsonschema", "version": "1-0-2"}});
        let key = SchemaKey::from_self_block(&doc).unwrap().unwrap();
        assert_eq!(key.to_string(), "iglu:com.acme/ok/jsonschema/1-0-2");
        let bad = serde_json::json!({"self": {"vendor": "..", "name": "ok", "format": "jsonschema", "version": "1-0-2"}});
        assert!(SchemaKey::from_self_block(&bad).unwrap().is_err());
        let partial = serde_json::json!({"self": {"vendor": "com.acme", "name": "ok"}});
        assert!(SchemaKey::from_self_block(&partial).is_none());
        assert!(SchemaKey::from_self_block(&serde_json::json!({})).is_none());
    }

    #[test]
    fn versions_order_numerically() {
        let v = |s: &str| SchemaVer::parse(s).unwrap();
        assert!(v("1-0-10") > v("1-0-9"));
        assert!(v("2-0-0") > v("1-99-99"));
        assert!(v("1-1-0") > v("1-0-5"));
    }

    /// One grammar, written three ways in Rust (the parser, the `const fn` that checks typed
    /// events' URIs at compile time, and `IGLU_URI_PATTERN`, the regex of the envelope schema
    /// and of the browser package): over random near-URIs, the three agree on every string.
    #[test]
    fn the_parser_the_const_check_and_the_pattern_agree() {
        let pattern = regress::Regex::new(crate::protocol::IGLU_URI_PATTERN).unwrap();
        const PIECES: &[&str] = &[
            "iglu:",
            "com",
            "example",
            "media",
            ".",
            "/",
            "-",
            "_",
            "0",
            "1",
            "9",
            "01",
            "10",
            "123456789",
            "1234567890",
            "4294967295",
            "a",
            "Z",
            "jsonschema",
            "é",
            " ",
            "..",
            "//",
            ":",
            "+",
            "%2F",
            "\u{0}",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut valid = 0;
        for round in 0..200_000 {
            let s = if round % 2 == 0 {
                // Well-formed shape, pieces mutated now and then.
                const IDENT: &[&str] = &["com", "example", "a", "Z", "0", "-", "_", "jsonschema"];
                const VERSION: &[&str] =
                    &["1", "0", "9", "10", "123456789", "01", "1234567890", ""];
                let part = |next: &mut dyn FnMut(usize) -> usize, dots: bool| {
                    let mut p = String::new();
                    for i in 0..=next(3) {
                        if dots && i > 0 && next(2) == 0 {
                            p.push('.');
                        }
                        p.push_str(if next(20) == 0 {
                            PIECES[next(PIECES.len())]
                        } else {
                            IDENT[next(IDENT.len())]
                        });
                    }
                    p
                };
                let version = |next: &mut dyn FnMut(usize) -> usize| {
                    VERSION[if next(4) == 0 {
                        next(VERSION.len())
                    } else {
                        next(5)
                    }]
                };
                format!(
                    "iglu:{}/{}/{}/{}-{}-{}",
                    part(&mut next, true),
                    part(&mut next, false),
                    part(&mut next, false),
                    version(&mut next),
                    version(&mut next),
                    version(&mut next)
                )
            } else {
                let mut s = String::new();
                if next(5) > 0 {
                    s.push_str("iglu:");
                }
                for _ in 0..=next(12) {
                    s.push_str(PIECES[next(PIECES.len())]);
                }
                s
            };
            let parsed = SchemaKey::parse(&s).is_ok();
            let matched = pattern.find(&s).is_some();
            assert_eq!(parsed, matched, "parse vs IGLU_URI_PATTERN on {s:?}");
            assert_eq!(parsed, is_valid_uri(&s), "parse vs is_valid_uri on {s:?}");
            valid += usize::from(parsed);
        }
        assert!(
            valid > 5_000,
            "only {valid} valid URIs drawn: the test would not see much"
        );
    }
}
