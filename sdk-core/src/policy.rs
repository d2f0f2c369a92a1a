//! What to do with an answer from the collector: the table of DESIGN §3 as pure functions.
//!
//! Nothing here reads a clock, sleeps or draws a random number: the caller passes the attempt
//! number, the time spent so far, the wall clock (for `Retry-After` dates) and a jitter value
//! in `[0, 1)`. The native worker and the browser package share these decisions.

use std::time::Duration;

pub use crate::defaults::{
    DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRY_AFTER, DEFAULT_RETRY_DEADLINE,
};

/// Retry settings. Build with [`RetryPolicy::default`] and the `with_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry, doubled on every further attempt (before jitter).
    pub initial_backoff: Duration,
    /// Ceiling of one backoff delay (before jitter).
    pub max_backoff: Duration,
    /// Total time a batch may spend in retries; past it the batch is given up and counted.
    pub deadline: Duration,
    /// Ceiling applied to a server's `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            deadline: DEFAULT_RETRY_DEADLINE,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

/// How one send attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// The collector answered with this status and, maybe, a `Retry-After` header.
    Status {
        /// HTTP status code.
        code: u16,
        /// Raw `Retry-After` header value.
        retry_after: Option<&'a str>,
    },
    /// The answer came from another URL than the batch endpoint: the HTTP client followed a
    /// redirect itself (a client passed to `HttpTransport::with_client` may). Never delivery.
    Redirected,
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made, or broke before an answer.
    Network,
}

/// Why a batch is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 400: the body is not a batch; the collector dead-lettered it.
    Malformed,
    /// 401 or 403: the write key is missing or unknown.
    Unauthorized,
    /// 415: the collector does not accept the encoding.
    Unsupported,
    /// The answer is not an eventwire collector's: a redirect (3xx, or an answer from
    /// another URL), a 2xx other than 200, or a 200 whose body is not a batch answer that
    /// accounts for every event sent. Only a collector's answer settles an event as sent.
    NotACollector,
    /// Another 3xx or 4xx status that retrying will not change.
    Status(u16),
}

/// What the delivery loop does next with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 200: the collector answered for every event, if the body is its batch answer (the
    /// caller checks that, e.g. with `BatchResponse::for_batch`).
    Delivered,
    /// Transient failure: wait this long, then send the same batch again.
    Retry(Duration),
    /// 429 or 503: pause the whole pipeline this long, then send the same batch again.
    Throttle(Duration),
    /// 413: split the batch in two and send each half.
    Split,
    /// Do not send again; count the events as refused for this reason.
    Refuse(Refusal),
    /// Sending again would pass the retry deadline: give the events up.
    GiveUp,
}

impl RetryPolicy {
    /// Exponential backoff with full jitter: a uniform draw in `[0, min(max, initial·2^n))`.
    ///
    /// `attempt` is 0 for the first retry; `jitter` is a uniform sample in `[0, 1)`.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let ceiling = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        // In whole milliseconds: plenty for a backoff, and the browser build stays small.
        Duration::from_millis((duration_ms(ceiling) as f64 * jitter.clamp(0.0, 1.0)) as u64)
    }

    /// Decides what follows an attempt.
    ///
    /// * `attempt`: how many attempts of this batch failed before this one (0 on the first).
    /// * `elapsed`: time since the batch's first attempt.
    /// * `now_unix_ms`: wall clock, to read `Retry-After` given as an HTTP date.
    /// * `jitter`: uniform sample in `[0, 1)`.
    pub fn decide(
        &self,
        outcome: Attempt<'_>,
        attempt: u32,
        elapsed: Duration,
        now_unix_ms: u64,
        jitter: f64,
    ) -> Verdict {
        let wait = match outcome {
            Attempt::Status { code, retry_after } => {
                // A server's `Retry-After`, capped; a garbled one counts as none.
                let asked = retry_after
                    .and_then(|v| parse_retry_after(v, now_unix_ms))
                    .map(|d| d.min(self.max_retry_after));
                match code {
                    200 => return Verdict::Delivered,
                    // Only the collector's 200 batch answer is delivery: a 202 from a proxy,
                    // a 204, or a redirect (the POST would reach a page or another service).
                    201..=399 => return Verdict::Refuse(Refusal::NotACollector),
                    400 => return Verdict::Refuse(Refusal::Malformed),
                    401 | 403 => return Verdict::Refuse(Refusal::Unauthorized),
                    413 => return Verdict::Split,
                    415 => return Verdict::Refuse(Refusal::Unsupported),
                    // The server's pause, but never none: a server answering `Retry-After: 0`
                    // again and again would otherwise be called in a tight loop.
                    429 | 503 => {
                        let pause = asked.map_or_else(
                            || self.backoff(attempt, jitter),
                            |d| d.max(self.initial_backoff),
                        );
                        return self.within_deadline(elapsed, pause, Verdict::Throttle(pause));
                    }
                    // RFC 9110 allows `Retry-After` on any 5xx (gateways send it with 500,
                    // 502, 529): a failing server's hint, so at least the backoff.
                    500..=599 => {
                        let backoff = self.backoff(attempt, jitter);
                        asked.map_or(backoff, |d| d.max(backoff))
                    }
                    408 => self.backoff(attempt, jitter),
                    _ => return Verdict::Refuse(Refusal::Status(code)),
                }
            }
            Attempt::Redirected => return Verdict::Refuse(Refusal::NotACollector),
            Attempt::Timeout | Attempt::Network => self.backoff(attempt, jitter),
        };
        self.within_deadline(elapsed, wait, Verdict::Retry(wait))
    }

    fn within_deadline(&self, elapsed: Duration, wait: Duration, verdict: Verdict) -> Verdict {
        if elapsed.saturating_add(wait) > self.deadline {
            Verdict::GiveUp
        } else {
            verdict
        }
    }
}

/// A duration in whole milliseconds, saturating at `u64::MAX` (no 128-bit arithmetic: the
/// browser build pays for every routine). `const`, for tables of defaults.
pub const fn duration_ms(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(d.subsec_millis() as u64)
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (relative to `now_unix_ms`).
/// A date in the past means "now". Returns `None` for anything else.
///
/// Without the `http-date` feature only delay-seconds are read (the browser package turns a
/// date into seconds with `Date.parse` before it gets here).
pub fn parse_retry_after(value: &str, now_unix_ms: u64) -> Option<Duration> {
    let value = value.trim_ascii();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurdly long numbers; the caller caps the result anyway.
        let secs = value.bytes().fold(0u64, |n, b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        return Some(Duration::from_secs(secs));
    }
    http_date(value, now_unix_ms)
}

#[cfg(feature = "http-date")]
fn http_date(value: &str, now_unix_ms: u64) -> Option<Duration> {
    let date = httpdate::parse_http_date(value).ok()?;
    let now = std::time::UNIX_EPOCH + Duration::from_millis(now_unix_ms);
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(not(feature = "http-date"))]
fn http_date(_value: &str, _now_unix_ms: u64) -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_126_626_000; // 2025-11-26T03:10:26Z

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn status_table() {
        use Refusal::*;
        use Verdict::*;
        let p = policy();
        let s = |code| Attempt::Status {
            code,
            retry_after: None,
        };
        let retry0 = Retry(Duration::from_millis(50)); // jitter 0.5 of 100 ms
        let table: &[(Attempt<'_>, Verdict)] = &[
            (s(200), Delivered),
            (s(201), Refuse(NotACollector)),
            (s(202), Refuse(NotACollector)),
            (s(204), Refuse(NotACollector)),
            (s(299), Refuse(NotACollector)),
            (s(300), Refuse(NotACollector)),
            (s(301), Refuse(NotACollector)),
            (s(302), Refuse(NotACollector)),
            (s(303), Refuse(NotACollector)),
            (s(304), Refuse(NotACollector)),
            (s(307), Refuse(NotACollector)),
            (s(308), Refuse(NotACollector)),
            (Attempt::Redirected, Refuse(NotACollector)),
            (s(400), Refuse(Malformed)),
            (s(401), Refuse(Unauthorized)),
            (s(403), Refuse(Unauthorized)),
            (s(404), Refuse(Status(404))),
            (s(100), Refuse(Status(100))),
            (s(600), Refuse(Status(600))),
            (s(408), retry0),
            (s(413), Split),
            (s(415), Refuse(Unsupported)),
            (s(422), Refuse(Status(422))),
            (s(429), Throttle(Duration::from_millis(50))),
            (s(500), retry0),
            (s(502), retry0),
            (s(503), Throttle(Duration::from_millis(50))),
            (s(504), retry0),
            (s(599), retry0),
            (Attempt::Timeout, retry0),
            (Attempt::Network, retry0),
        ];
        for (outcome, expected) in table {
            assert_eq!(
                p.decide(*outcome, 0, Duration::ZERO, NOW, 0.5),
                *expected,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn retry_after_table() {
        let p = policy();
        let t = |v: &'static str| Attempt::Status {
            code: 429,
            retry_after: Some(v),
        };
        let cases: &[(Attempt<'_>, Verdict)] = &[
            (t("3"), Verdict::Throttle(Duration::from_secs(3))),
            (t(" 7 "), Verdict::Throttle(Duration::from_secs(7))),
            // never no pause at all: at least the initial backoff
            (t("0"), Verdict::Throttle(Duration::from_millis(100))),
            // capped at max_retry_after
            (t("3600"), Verdict::Throttle(Duration::from_secs(30))),
            (
                t("99999999999999999999999"),
                Verdict::Throttle(Duration::from_secs(30)),
            ),
            // HTTP date 5 s after NOW
            (
                t("Wed, 26 Nov 2025 03:10:31 GMT"),
                Verdict::Throttle(Duration::from_secs(5)),
            ),
            // HTTP date in the past: go now (after the initial backoff)
            (
                t("Wed, 26 Nov 2025 03:00:00 GMT"),
                Verdict::Throttle(Duration::from_millis(100)),
            ),
            // garbage falls back to backoff (jitter 0.5 of 100 ms)
            (t("soon"), Verdict::Throttle(Duration::from_millis(50))),
            (t("-1"), Verdict::Throttle(Duration::from_millis(50))),
            (t("1.5"), Verdict::Throttle(Duration::from_millis(50))),
        ];
        for (outcome, expected) in cases {
            assert_eq!(
                p.decide(*outcome, 0, Duration::ZERO, NOW, 0.5),
                *expected,
                "{outcome:?}"
            );
        }
        let s503 = Attempt::Status {
            code: 503,
            retry_after: Some("2"),
        };
        assert_eq!(
            p.decide(s503, 4, Duration::ZERO, NOW, 0.9),
            Verdict::Throttle(Duration::from_secs(2))
        );
    }

    /// Any 5xx with a `Retry-After` waits that long (capped), and at least the backoff (a
    /// failing server's `0` is not a tight loop); without one, or with a garbled one, backoff
    /// with full jitter.
    #[test]
    fn retry_after_on_other_server_errors() {
        let p = policy();
        let cases: &[(u16, Option<&str>, Verdict)] = &[
            (500, Some("3"), Verdict::Retry(Duration::from_secs(3))),
            (502, Some("3"), Verdict::Retry(Duration::from_secs(3))),
            (504, Some("0"), Verdict::Retry(Duration::from_millis(50))),
            (500, Some("0"), Verdict::Retry(Duration::from_millis(50))),
            (529, Some("3600"), Verdict::Retry(Duration::from_secs(30))),
            (
                500,
                Some("Wed, 26 Nov 2025 03:10:31 GMT"),
                Verdict::Retry(Duration::from_secs(5)),
            ),
            (500, Some("soon"), Verdict::Retry(Duration::from_millis(50))),
            (500, None, Verdict::Retry(Duration::from_millis(50))),
            // Not on 408 (a client timeout is not the server asking for a pause).
            (408, Some("3"), Verdict::Retry(Duration::from_millis(50))),
            // Past the deadline, a server's pause is given up like a backoff.
            (500, Some("30"), Verdict::GiveUp),
        ];
        // A `0` from a server that keeps failing backs off like no header at all.
        let again = Attempt::Status {
            code: 500,
            retry_after: Some("0"),
        };
        assert_eq!(
            p.decide(again, 5, Duration::ZERO, NOW, 1.0),
            Verdict::Retry(Duration::from_millis(3_200))
        );
        for &(code, retry_after, expected) in cases {
            let elapsed = if expected == Verdict::GiveUp {
                Duration::from_secs(45)
            } else {
                Duration::ZERO
            };
            let outcome = Attempt::Status { code, retry_after };
            assert_eq!(
                p.decide(outcome, 0, elapsed, NOW, 0.5),
                expected,
                "{code} {retry_after:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let p = policy();
        let cases: &[(u32, f64, u64)] = &[
            (0, 1.0, 100),
            (1, 1.0, 200),
            (2, 1.0, 400),
            (6, 1.0, 6_400),
            (7, 1.0, 10_000), // capped
            (40, 1.0, 10_000),
            (u32::MAX, 1.0, 10_000),
            (3, 0.0, 0),
            (3, 0.25, 200),
            (3, -3.0, 0),  // clamped
            (3, 7.0, 800), // clamped
        ];
        for &(attempt, jitter, ms) in cases {
            assert_eq!(
                p.backoff(attempt, jitter),
                Duration::from_millis(ms),
                "attempt {attempt} jitter {jitter}"
            );
        }
    }

    #[test]
    fn deadline_turns_retries_into_give_up() {
        let p = policy();
        let s500 = Attempt::Status {
            code: 500,
            retry_after: None,
        };
        // 59.9 s spent + 0.05 s backoff fits in 60 s
        assert_eq!(
            p.decide(s500, 0, Duration::from_millis(59_900), NOW, 0.5),
            Verdict::Retry(Duration::from_millis(50))
        );
        assert_eq!(
            p.decide(s500, 0, Duration::from_millis(59_990), NOW, 0.5),
            Verdict::GiveUp
        );
        let s429 = Attempt::Status {
            code: 429,
            retry_after: Some("20"),
        };
        assert_eq!(
            p.decide(s429, 0, Duration::from_secs(41), NOW, 0.5),
            Verdict::GiveUp
        );
        assert_eq!(
            p.decide(s429, 0, Duration::from_secs(40), NOW, 0.5),
            Verdict::Throttle(Duration::from_secs(20))
        );
        // Final answers are not subject to the deadline.
        let s200 = Attempt::Status {
            code: 200,
            retry_after: None,
        };
        assert_eq!(
            p.decide(s200, 9, Duration::from_secs(999), NOW, 0.5),
            Verdict::Delivered
        );
    }

    #[test]
    fn parse_retry_after_forms() {
        assert_eq!(
            parse_retry_after("120", NOW),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 26 Nov 2025 03:11:26 GMT", NOW),
            Some(Duration::from_secs(60))
        );
        // RFC 850 and asctime forms are also HTTP dates.
        assert_eq!(
            parse_retry_after("Wednesday, 26-Nov-25 03:11:26 GMT", NOW),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("", NOW), None);
        assert_eq!(parse_retry_after("tomorrow", NOW), None);
    }
}
