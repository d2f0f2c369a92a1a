//! What to tell a person when batches cannot be delivered: what went wrong and where, in
//! words they can act on (connection refused, DNS, TLS, timeout, a status), said at the
//! first failure, again when it changes, and at most every [`REPEAT_EVERY_MS`] while it
//! lasts; and once when delivery works again.
//!
//! Pure: the worker feeds it each request's outcome with the time, and logs what it returns.

use crate::transport::{Response, TransportError};

/// While the same problem lasts, it is said again at most this often (milliseconds).
pub const REPEAT_EVERY_MS: u64 = 30_000;

/// A failed request, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its kind (`refused`, `dns`, `tls`, `timeout`, `reset`, `network`, `status 503`…):
    /// a change of kind is said at once.
    pub kind: String,
    /// What went wrong and where, for a person.
    pub text: String,
}

/// Describes a request that failed in a way retrying may fix: no answer, or 408, 429 or
/// 5xx. `None` otherwise: delivered, or refused for good (a redirect, 4xx), which the
/// worker reports as a drop.
pub fn describe(endpoint: &str, result: &Result<Response, TransportError>) -> Option<Problem> {
    let host = host_of(endpoint);
    let (kind, text) = match result {
        Ok(r) if !(r.status == 408 || r.status == 429 || r.status >= 500) => return None,
        Ok(r) => (
            format!("status {}", r.status),
            format!("{endpoint} answered {}", status_words(r.status)),
        ),
        Err(TransportError::Timeout) => (
            "timeout".to_owned(),
            format!("no answer from {endpoint} within the request timeout"),
        ),
        Err(TransportError::Network(message)) => network(&host, endpoint, message),
    };
    Some(Problem { kind, text })
}

fn network(host: &str, endpoint: &str, message: &str) -> (String, String) {
    let lower = message.to_ascii_lowercase();
    // The last part of the chain is the most specific.
    let detail = message.rsplit(": ").next().unwrap_or(message);
    let detail = without_os_error(detail);
    if lower.contains("connection refused") {
        (
            "refused".into(),
            format!(
                "cannot connect to {host}: connection refused (is a collector listening there?)"
            ),
        )
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        (
            "dns".into(),
            format!("cannot resolve the host of {endpoint} (DNS: {detail})"),
        )
    } else if lower.contains("invalidcontenttype") {
        (
            "tls".into(),
            format!("TLS handshake with {host} failed: it does not speak TLS (an http:// collector given as https://?)"),
        )
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        (
            "tls".into(),
            format!("TLS handshake with {host} failed: {detail}"),
        )
    } else if lower.contains("connection reset") || lower.contains("broken pipe") {
        (
            "reset".into(),
            format!("the connection to {host} was reset before an answer came"),
        )
    } else {
        (
            "network".into(),
            format!("cannot reach {endpoint}: {detail}"),
        )
    }
}

fn status_words(status: u16) -> String {
    match status {
        429 => "429 Too Many Requests".into(),
        500 => "500 Internal Server Error".into(),
        502 => "502 Bad Gateway (a proxy could not reach the collector)".into(),
        503 => "503 Service Unavailable (the collector cannot store events now)".into(),
        504 => "504 Gateway Timeout (a proxy got no answer from the collector)".into(),
        s => s.to_string(),
    }
}

/// `text` without the ` (os error N)` that `std::io::Error` appends.
fn without_os_error(text: &str) -> &str {
    match text.find(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text,
    }
}

/// `host:port` of a URL (the URL itself when it has no `//`).
fn host_of(endpoint: &str) -> String {
    let rest = endpoint.split_once("//").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority).to_owned()
}

/// What has been said, to decide what to say next.
#[derive(Debug, Default)]
pub struct Reports {
    /// The problem last said, and when (ms).
    said: Option<(String, u64)>,
    /// When failures began (ms), and how many requests failed since.
    failing: Option<(u64, u64)>,
}

/// A line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Say {
    /// Delivery fails: say this (a warning).
    Failing(String),
    /// Delivery works again after failing: say this (information).
    Recovered(String),
}

impl Reports {
    /// A request failed with `problem` at `now_ms`, with `waiting` events not yet delivered:
    /// what to say, if anything.
    pub fn failed(&mut self, problem: &Problem, now_ms: u64, waiting: u64) -> Option<Say> {
        let (since, failures) = self.failing.get_or_insert((now_ms, 0));
        *failures += 1;
        let (since, failures) = (*since, *failures);
        let due = match &self.said {
            None => true,
            Some((kind, at)) => {
                *kind != problem.kind || now_ms.saturating_sub(*at) >= REPEAT_EVERY_MS
            }
        };
        if !due {
            return None;
        }
        self.said = Some((problem.kind.clone(), now_ms));
        let text = if failures == 1 {
            format!("{}; retrying, {waiting} events waiting", problem.text)
        } else {
            format!(
                "{}; {failures} attempts failed over {} s, retrying, {waiting} events waiting",
                problem.text,
                now_ms.saturating_sub(since) / 1000
            )
        };
        Some(Say::Failing(text))
    }

    /// A request was answered at `now_ms`: what to say, if anything.
    pub fn answered(&mut self, now_ms: u64) -> Option<Say> {
        let (since, failures) = self.failing.take()?;
        self.said = None;
        Some(Say::Recovered(format!(
            "delivering again, after {failures} failed attempts over {} s",
            now_ms.saturating_sub(since) / 1000
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "http://127.0.0.1:1";

    fn net(message: &str) -> Result<Response, TransportError> {
        Err(TransportError::Network(message.to_owned()))
    }

    /// The messages reqwest gives for each kind (as seen on Linux), and what is said.
    #[test]
    fn each_failure_is_named_with_where() {
        for (result, kind, words) in [
            (
                net("error sending request for url (http://127.0.0.1:1/v1/batch): client error (Connect): tcp connect error: Connection refused (os error 111)"),
                "refused",
                "cannot connect to 127.0.0.1:1: connection refused",
            ),
            (
                net("error sending request for url (http://no-such-host.invalid:8080/v1/batch): client error (Connect): dns error: error resolving DNS: failed to lookup address information: Name or service not known"),
                "dns",
                "cannot resolve the host of http://127.0.0.1:1 (DNS: Name or service not known)",
            ),
            (
                net("error sending request for url (https://127.0.0.1:18932/v1/batch): client error (Connect): received corrupt message of type InvalidContentType"),
                "tls",
                "it does not speak TLS (an http:// collector given as https://?)",
            ),
            (
                net("error sending request for url (https://127.0.0.1:18933/v1/batch): client error (Connect): invalid peer certificate: UnknownIssuer"),
                "tls",
                "TLS handshake with 127.0.0.1:1 failed: UnknownIssuer",
            ),
            (
                net("error sending request for url (http://127.0.0.1:18934/v1/batch): client error (SendRequest): connection error: Connection reset by peer (os error 104)"),
                "reset",
                "the connection to 127.0.0.1:1 was reset",
            ),
            (
                Err(TransportError::Timeout),
                "timeout",
                "no answer from http://127.0.0.1:1 within the request timeout",
            ),
            (
                net("something else: entirely (os error 5)"),
                "network",
                "cannot reach http://127.0.0.1:1: entirely",
            ),
            (
                Ok(Response::status(503)),
                "status 503",
                "answered 503 Service Unavailable",
            ),
        ] {
            let p = describe(E, &result).unwrap();
            assert_eq!(p.kind, kind, "{result:?}");
            assert!(p.text.contains(words), "{}\nwants: {words}", p.text);
            assert!(!p.text.contains("os error"), "{}", p.text);
        }
        for settled in [200, 301, 400, 401, 413] {
            assert_eq!(
                describe(E, &Ok(Response::status(settled))),
                None,
                "{settled}"
            );
        }
        assert_eq!(
            host_of("https://user:pw@example.com:8443/path"),
            "example.com:8443"
        );
    }

    /// First failure: said. The same again within the interval: quiet; after it: said with
    /// the count. Another kind: said at once. An answer: "delivering again", once.
    #[test]
    fn said_at_first_on_change_and_at_a_sane_rate() {
        let refused = Problem {
            kind: "refused".into(),
            text: "refused".into(),
        };
        let dns = Problem {
            kind: "dns".into(),
            text: "dns".into(),
        };
        let mut r = Reports::default();
        assert_eq!(r.answered(0), None, "nothing failed yet");
        let said: Vec<(u64, &Problem, bool)> = vec![
            (0, &refused, true),
            (100, &refused, false),
            (29_999, &refused, false),
            (30_000, &refused, true),
            (30_001, &refused, false),
            (30_002, &dns, true),
            (30_003, &dns, false),
            (30_004, &refused, true),
        ];
        for (at, problem, expected) in said {
            let got = r.failed(problem, at, 7);
            assert_eq!(got.is_some(), expected, "at {at} ms: {got:?}");
            if at == 30_000 {
                assert_eq!(
                    got.unwrap(),
                    Say::Failing(
                        "refused; 4 attempts failed over 30 s, retrying, 7 events waiting".into()
                    )
                );
            }
        }
        assert_eq!(
            r.answered(60_000),
            Some(Say::Recovered(
                "delivering again, after 8 failed attempts over 60 s".into()
            ))
        );
        assert_eq!(r.answered(60_001), None);
        // A new outage is said at once.
        assert_eq!(
            r.failed(&refused, 60_002, 1),
            Some(Say::Failing("refused; retrying, 1 events waiting".into()))
        );
    }
}
