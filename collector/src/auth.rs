//! Write keys in request bodies: found by a bounded scan, before anything parses the body.
//!
//! Browsers put the key in the body (a `text/plain` request needs no CORS preflight, and a
//! beacon cannot set headers); the tracker writes it near the start, before `events`. A
//! stranger's body is never parsed: the first [`BODY_KEY_SCAN`] bytes are searched for
//! `"write_key"` followed by a plain string (no escapes), and that is all.

/// How much of a body is searched for a write key.
pub const BODY_KEY_SCAN: usize = 4096;

/// The value of the first `"write_key": "…"` in the first [`BODY_KEY_SCAN`] bytes of `body`,
/// if it is a string without escapes.
pub fn body_write_key(body: &[u8]) -> Option<&[u8]> {
    const NAME: &[u8] = b"\"write_key\"";
    let head = &body[..body.len().min(BODY_KEY_SCAN)];
    let at = head.windows(NAME.len()).position(|w| w == NAME)? + NAME.len();
    let rest = skip_space(&head[at..]);
    let rest = skip_space(rest.strip_prefix(b":")?);
    let value = rest.strip_prefix(b"\"")?;
    let end = value.iter().position(|b| *b == b'"' || *b == b'\\')?;
    (value[end] == b'"').then(|| &value[..end])
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &bytes[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_plain_key_near_the_start_only() {
        let far = format!(
            "{{\"pad\":\"{}\",\"write_key\":\"k\"}}",
            "x".repeat(BODY_KEY_SCAN)
        );
        let table: &[(&str, Option<&str>)] = &[
            (
                r#"{"sent_at":"t","write_key":"abc","events":[]}"#,
                Some("abc"),
            ),
            (r#"{ "write_key" :  "abc" }"#, Some("abc")),
            ("{\"write_key\":\n\"abc\"}", Some("abc")),
            (r#"{"write_key":""}"#, Some("")),
            (r#"{"write_key":"a\"b"}"#, None),
            (r#"{"write_key":42}"#, None),
            (r#"{"write_key":"unterminated"#, None),
            (r#"{"events":[]}"#, None),
            ("", None),
            (&far, None),
        ];
        for (body, key) in table {
            assert_eq!(
                body_write_key(body.as_bytes()),
                key.map(str::as_bytes),
                "{body:.80}"
            );
        }
    }
}
