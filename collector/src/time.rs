//! Time stamping: the collector's clock is the authority.
//!
//! `received_at` is the collector's clock when the request arrived. Client clocks drift, so
//! the event's time is reconstructed from what the client *measured* (the delay between
//! tracking and sending) rather than what its clock *said*:
//!
//! ```text
//! event_time = received_at − (sent_at − created_at), clamped to at most received_at
//! ```
//!
//! The client's ordering of its own events is kept; its offset from true time is removed.

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 timestamp (any offset) to UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a timestamp as the wire does: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The skew-corrected event time (see the module docs).
pub fn event_time(
    received_at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
) -> DateTime<Utc> {
    let waited = sent_at.signed_duration_since(created_at);
    let t = received_at
        .checked_sub_signed(waited)
        .unwrap_or(received_at);
    t.min(received_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn corrects_skew_and_clamps() {
        let cases = [
            // (received_at, sent_at, created_at, expected event_time)
            // Client clock one hour fast; the event waited 2 s before sending.
            (
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T04:00:05.000Z",
                "2026-11-26T04:00:03.000Z",
                "2026-11-26T03:00:08.000Z",
            ),
            // Client clock right; sent at once.
            (
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T03:00:10.000Z",
            ),
            // Client clock 3 days slow, event queued offline for 5 minutes.
            (
                "2026-11-26T03:00:00.000Z",
                "2026-11-23T03:05:00.000Z",
                "2026-11-23T03:00:00.000Z",
                "2026-11-26T02:55:00.000Z",
            ),
            // created_at after sent_at (clock stepped back between): clamped to received_at.
            (
                "2026-11-26T03:00:00.000Z",
                "2026-11-26T03:00:00.000Z",
                "2026-11-26T03:00:09.000Z",
                "2026-11-26T03:00:00.000Z",
            ),
            // Offsets other than Z are understood.
            (
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T05:00:05.000+02:00",
                "2026-11-26T05:00:03.000+02:00",
                "2026-11-26T03:00:08.000Z",
            ),
        ];
        for (received, sent, created, expected) in cases {
            let got = event_time(t(received), t(sent), t(created));
            assert_eq!(
                format_timestamp(got),
                expected,
                "{received} {sent} {created}"
            );
            assert!(got <= t(received));
        }
    }

    #[test]
    fn rejects_non_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2026-11-26",
            "2026-11-26 03:00:00",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn formats_like_the_tracker() {
        assert_eq!(
            format_timestamp(t("2026-11-26T03:10:25.001Z")),
            "2026-11-26T03:10:25.001Z"
        );
    }
}
