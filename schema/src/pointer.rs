//! JSON Pointer (RFC 6901) reference tokens.

/// One reference token of a pointer: `~` → `~0`, `/` → `~1`.
#[must_use]
pub fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// The name a reference token stands for: `~1` → `/`, then `~0` → `~`.
#[must_use]
pub fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_round_trip() {
        for (name, token) in [
            ("a", "a"),
            ("a/b", "a~1b"),
            ("m~n", "m~0n"),
            ("~1", "~01"),
            ("/~", "~1~0"),
        ] {
            assert_eq!(super::escape(name), token);
            assert_eq!(super::unescape(token), name);
        }
    }
}
