//! Reading a partition in offset order, so nothing is committed past a record never read.
//!
//! A consumer trusts the broker's fetch answers: when one starts past the offset asked for,
//! the consumer moves on from there. Kafka answers that way only where records are really
//! gone (compacted away, transaction markers, deleted by retention). A broker that gives a
//! batch its offsets before it stores it — brokers that keep batches as objects do, nisshi
//! among them — can also answer with the next batch while an earlier one is still being
//! stored: a reader that commits its position then loses that batch for good. (The test
//! broker does this about once a minute under two producers; a game day lost 66 events
//! to it.)
//!
//! So each partition is taken in order ([`InputOrder`]): a record at the offset expected
//! next is taken; one past it opens a *gap*, and the partition is read again from the
//! expected offset (a seek) until the gap fills. The missing offsets are taken as absent
//! (counted and logged) only on a record read after a re-read that began once the gap had
//! been open for the whole gap wait: a record polled late (the worker was busy writing or
//! rebuilding) may have been fetched long before, while the batch was still being stored,
//! and says nothing about the broker now. While a gap is open the partition is fetched
//! again and again (each fetch up to `fetch.max.bytes` of the records after it). A record below
//! the expected offset (the consumer was reset to an earlier position) is taken too, and
//! reading goes on from there: handling a record twice is harmless (it is a duplicate),
//! skipping one is not.

use std::time::{Duration, Instant};

/// What to do with a record read at some offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// Take it: it is the next record (or an earlier one, read again).
    Take,
    /// Do not take it: the offsets from this one on were skipped by the fetch; read the
    /// partition again from here.
    ReadAgain(i64),
    /// Take it, and take this many offsets before it as absent: the gap stayed open for the
    /// whole wait.
    TakeSkipping(i64),
}

/// An open gap, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// How long the gap has been open.
    pub open_for: Duration,
    /// Whether the record was read after a re-read that began once the gap had been open
    /// for the whole wait (so it was fetched after the deadline, not queued before it).
    pub read_after_deadline: bool,
}

/// The policy: what to do with a record at `offset` when `expected` is the next offset
/// (`None`: not known yet, anything is next) and `gap` is the gap open at `expected`
/// (`None`: none yet). `wait` is how long a gap is read again before its offsets are taken
/// as absent (zero: at once).
#[must_use]
pub fn intake(expected: Option<i64>, offset: i64, gap: Option<Gap>, wait: Duration) -> Intake {
    match expected {
        Some(e) if offset > e => match gap {
            _ if wait.is_zero() => Intake::TakeSkipping(offset - e),
            Some(g) if g.open_for >= wait && g.read_after_deadline => {
                Intake::TakeSkipping(offset - e)
            }
            _ => Intake::ReadAgain(e),
        },
        _ => Intake::Take,
    }
}

/// One partition's reading position, with the gap it waits on.
#[derive(Debug, Clone)]
pub struct InputOrder {
    expected: Option<i64>,
    /// The open gap: its offset, when it opened, when the last re-read began.
    gap: Option<(i64, Instant, Instant)>,
    wait: Duration,
}

/// What [`InputOrder::offer`] decided, and whether a gap closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offered {
    /// What to do with the record.
    pub intake: Intake,
    /// A gap was open at this record's offset and the record filled it.
    pub filled: bool,
}

impl InputOrder {
    /// Reading from `expected` (`None`: from wherever the first record is), waiting at
    /// most `wait` for a gap to fill.
    #[must_use]
    pub fn new(expected: Option<i64>, wait: Duration) -> Self {
        InputOrder {
            expected,
            gap: None,
            wait,
        }
    }

    /// The next offset expected.
    #[must_use]
    pub fn expected(&self) -> Option<i64> {
        self.expected
    }

    /// Decides about the record at `offset`, polled at `now`, and moves the position on
    /// when it is taken. On [`Intake::ReadAgain`] the caller reads the partition again
    /// (seeks) before it polls the next record: the re-read is taken to begin at `now`.
    pub fn offer(&mut self, offset: i64, now: Instant) -> Offered {
        let open = self.gap.filter(|(at, _, _)| Some(*at) == self.expected);
        let gap = open.map(|(_, since, reread)| Gap {
            open_for: now.saturating_duration_since(since),
            read_after_deadline: reread >= since + self.wait,
        });
        let intake = intake(self.expected, offset, gap, self.wait);
        let mut filled = false;
        match intake {
            Intake::ReadAgain(at) => {
                let since = open.map_or(now, |(_, since, _)| since);
                self.gap = Some((at, since, now));
            }
            Intake::Take | Intake::TakeSkipping(_) => {
                filled = matches!(intake, Intake::Take)
                    && self.gap.is_some_and(|(at, _, _)| at == offset);
                self.gap = None;
                self.expected = Some(offset + 1);
            }
        }
        Offered { intake, filled }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(2);

    #[test]
    fn the_policy() {
        let gap = |secs: u64, read_after_deadline: bool| {
            Some(Gap {
                open_for: Duration::from_secs(secs),
                read_after_deadline,
            })
        };
        for (expected, offset, open, wait, want) in [
            // Nothing known yet: anything is next.
            (None, 0, None, WAIT, Intake::Take),
            (None, 500, None, WAIT, Intake::Take),
            // In order.
            (Some(10), 10, None, WAIT, Intake::Take),
            // Read again (the consumer was reset, or a seek went back): taken.
            (Some(10), 3, None, WAIT, Intake::Take),
            (Some(10), 3, gap(1, false), WAIT, Intake::Take),
            // Past the expected offset: read again from it, while the wait lasts.
            (Some(10), 15, None, WAIT, Intake::ReadAgain(10)),
            (Some(10), 15, gap(1, false), WAIT, Intake::ReadAgain(10)),
            // Open for the whole wait, but this record may have been fetched before the
            // deadline (polled late): read again once more.
            (Some(10), 15, gap(2, false), WAIT, Intake::ReadAgain(10)),
            (Some(10), 15, gap(60, false), WAIT, Intake::ReadAgain(10)),
            // Fetched by a re-read begun after the deadline: the 5 offsets are absent.
            (Some(10), 15, gap(2, true), WAIT, Intake::TakeSkipping(5)),
            (Some(10), 11, gap(9, true), WAIT, Intake::TakeSkipping(1)),
            // No wait: gaps are taken as they come.
            (Some(10), 15, None, Duration::ZERO, Intake::TakeSkipping(5)),
        ] {
            assert_eq!(
                intake(expected, offset, open, wait),
                want,
                "expected {expected:?}, offset {offset}, gap {open:?}, wait {wait:?}"
            );
        }
    }

    #[test]
    fn a_gap_is_read_again_until_it_fills() {
        let t0 = Instant::now();
        let mut order = InputOrder::new(Some(100), WAIT);
        assert_eq!(order.offer(100, t0).intake, Intake::Take);
        // The fetch skipped 101..=104.
        assert_eq!(order.offer(105, t0).intake, Intake::ReadAgain(101));
        assert_eq!(order.expected(), Some(101));
        // Read again: still skipped a little later, then the batch is there.
        let later = t0 + Duration::from_millis(50);
        assert_eq!(order.offer(105, later).intake, Intake::ReadAgain(101));
        let filled = order.offer(101, later);
        assert_eq!(
            filled,
            Offered {
                intake: Intake::Take,
                filled: true
            }
        );
        for o in 102..=105 {
            assert_eq!(
                order.offer(o, later),
                Offered {
                    intake: Intake::Take,
                    filled: false
                }
            );
        }
        assert_eq!(order.expected(), Some(106));
    }

    #[test]
    fn a_gap_that_stays_open_for_the_wait_is_taken_as_absent() {
        let t0 = Instant::now();
        let mut order = InputOrder::new(Some(0), WAIT);
        assert_eq!(order.offer(7, t0).intake, Intake::ReadAgain(0));
        assert_eq!(
            order.offer(7, t0 + Duration::from_millis(1_999)).intake,
            Intake::ReadAgain(0)
        );
        // At the deadline: one more re-read, begun now…
        assert_eq!(order.offer(7, t0 + WAIT).intake, Intake::ReadAgain(0));
        // … and what it reads decides.
        assert_eq!(
            order.offer(7, t0 + WAIT + Duration::from_millis(5)),
            Offered {
                intake: Intake::TakeSkipping(7),
                filled: false
            }
        );
        // A later gap waits its own full wait.
        let t1 = t0 + WAIT + Duration::from_millis(10);
        assert_eq!(order.offer(20, t1).intake, Intake::ReadAgain(8));
        assert_eq!(
            order.offer(20, t1 + Duration::from_millis(100)).intake,
            Intake::ReadAgain(8)
        );
    }

    #[test]
    fn a_reset_to_an_earlier_offset_is_followed() {
        let t0 = Instant::now();
        // Expected 500 (the committed offset), but the log was recreated: the consumer
        // starts again at 0.
        let mut order = InputOrder::new(Some(500), WAIT);
        assert_eq!(order.offer(0, t0).intake, Intake::Take);
        assert_eq!(order.offer(1, t0).intake, Intake::Take);
        assert_eq!(order.expected(), Some(2));
    }

    /// The breaker's case: a re-read begun while the batch was still being stored is
    /// answered, queued, and polled only seconds later (the worker was writing or
    /// rebuilding). That record says nothing about the broker now: read again, and the
    /// batch, stored meanwhile, fills the gap.
    #[test]
    fn a_record_polled_late_does_not_close_a_gap() {
        let t0 = Instant::now();
        let mut order = InputOrder::new(Some(100), WAIT);
        assert_eq!(order.offer(105, t0).intake, Intake::ReadAgain(100));
        // Polled 3 s later: the re-read began at t0, before the deadline.
        let late = t0 + Duration::from_secs(3);
        assert_eq!(order.offer(105, late).intake, Intake::ReadAgain(100));
        // The re-read begun at `late` finds the batch.
        assert_eq!(
            order.offer(100, late + Duration::from_millis(2)),
            Offered {
                intake: Intake::Take,
                filled: true
            }
        );
    }
}
