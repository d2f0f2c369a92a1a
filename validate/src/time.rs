//! Time stamping: the collector's clock is the authority.
//!
//! `received_at` is the collector's clock when the request arrived. Client clocks drift, so
//! the event's time is reconstructed from what the client *measured* (the delay between
//! tracking and sending) rather than what its clock *said*:
//!
//! ```text
//! event_time = received_at − (sent_at − created_at),
//!              clamped to [received_at − MAX_EVENT_AGE, received_at]
//! ```
//!
//! The client's ordering of its own events is kept; its offset from true time is removed.
//! The clamps keep the result a real time near `received_at` whatever the client sent (an
//! uninitialised `created_at` of year 1 with a fast clock would otherwise give a negative
//! year, which is not RFC 3339); a clamped time is marked in the good line
//! (`event_time_clamped`).

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

/// The oldest an `event_time` may be, before `received_at`: a year (events kept offline on
/// a device for longer than that are stamped a year old, and marked).
pub const MAX_EVENT_AGE: chrono::TimeDelta = chrono::TimeDelta::days(365);

/// Why an `event_time` was clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clamped {
    /// It would have been after `received_at` (the client's clock stepped between
    /// `created_at` and `sent_at`): set to `received_at`.
    Future,
    /// It would have been more than [`MAX_EVENT_AGE`] before `received_at`: set to that.
    TooOld,
}

impl Clamped {
    /// As written in the good line's `event_time_clamped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Clamped::Future => "future",
            Clamped::TooOld => "too_old",
        }
    }
}

/// The skew-corrected event time (see the module docs), and whether it was clamped.
pub fn event_time(
    received_at: DateTime<Utc>,
    sent_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
) -> (DateTime<Utc>, Option<Clamped>) {
    let oldest = received_at - MAX_EVENT_AGE;
    let waited = sent_at.signed_duration_since(created_at);
    match received_at.checked_sub_signed(waited) {
        Some(t) if t > received_at => (received_at, Some(Clamped::Future)),
        Some(t) if t >= oldest => (t, None),
        _ if waited < chrono::TimeDelta::zero() => (received_at, Some(Clamped::Future)),
        _ => (oldest, Some(Clamped::TooOld)),
    }
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
            // (received_at, sent_at, created_at, expected event_time, clamped)
            // Client clock one hour fast; the event waited 2 s before sending.
            (
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T04:00:05.000Z",
                "2026-11-26T04:00:03.000Z",
                "2026-11-26T03:00:08.000Z",
                None,
            ),
            // Client clock right; sent at once.
            (
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T03:00:10.000Z",
                None,
            ),
            // Client clock 3 days slow, event queued offline for 5 minutes.
            (
                "2026-11-26T03:00:00.000Z",
                "2026-11-23T03:05:00.000Z",
                "2026-11-23T03:00:00.000Z",
                "2026-11-26T02:55:00.000Z",
                None,
            ),
            // created_at after sent_at (clock stepped back between): clamped to received_at.
            (
                "2026-11-26T03:00:00.000Z",
                "2026-11-26T03:00:00.000Z",
                "2026-11-26T03:00:09.000Z",
                "2026-11-26T03:00:00.000Z",
                Some(Clamped::Future),
            ),
            // Offsets other than Z are understood.
            (
                "2026-11-26T03:00:10.000Z",
                "2026-11-26T05:00:05.000+02:00",
                "2026-11-26T05:00:03.000+02:00",
                "2026-11-26T03:00:08.000Z",
                None,
            ),
            // An uninitialised created_at (year 1) and a fast client clock: a year ago.
            (
                "2026-11-26T03:00:00.000Z",
                "2999-01-01T00:00:00.000Z",
                "0001-01-01T00:00:00.000Z",
                "2025-11-26T03:00:00.000Z",
                Some(Clamped::TooOld),
            ),
            // Just inside the year: kept.
            (
                "2026-11-26T03:00:00.000Z",
                "2026-11-26T03:00:00.000Z",
                "2025-11-26T03:00:01.000Z",
                "2025-11-26T03:00:01.000Z",
                None,
            ),
            // created_at far in the future of sent_at: received_at.
            (
                "2026-11-26T03:00:00.000Z",
                "0001-01-01T00:00:00.000Z",
                "9999-01-01T00:00:00.000Z",
                "2026-11-26T03:00:00.000Z",
                Some(Clamped::Future),
            ),
        ];
        for (received, sent, created, expected, clamped) in cases {
            let (got, why) = event_time(t(received), t(sent), t(created));
            assert_eq!(
                (format_timestamp(got).as_str(), why),
                (expected, clamped),
                "{received} {sent} {created}"
            );
            assert!(got <= t(received) && got >= t(received) - MAX_EVENT_AGE);
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
