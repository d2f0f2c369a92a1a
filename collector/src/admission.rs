//! Admission: how much work the collector takes on at once. When a batch request arrives
//! and no request slot is free, or its declared length (the body limit when it declares
//! none) does not fit in the bytes left, it is shed at once with 503 and `Retry-After`
//! (nothing read, nothing stored, the sender retries later) instead of queueing without
//! bound. Otherwise its body holds bytes as it arrives, and it takes a slot once it is in
//! (shed then if the bound was reached meanwhile), so connections that trickle hold next
//! to nothing. While its lines wait to be written it holds their size if that is larger.
//! `/healthz` and `/metrics` are never shed.
//!
//! Validation's CPU work is admitted separately, one request per core at a time
//! ([`Admission::cpu`]): the parsed events exist only there, and a backlog of validation
//! never stands in the async runtime's queues in front of a health check.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError};

/// Bytes are reserved in units of this many (a semaphore counts in `u32`).
const UNIT: usize = 1024;

/// Why a request was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shed {
    /// Every request slot is taken.
    Requests,
    /// The bytes in flight would pass their bound.
    Bytes,
}

impl Shed {
    /// The `reason` label of the shed counter.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Shed::Requests => "requests",
            Shed::Bytes => "bytes",
        }
    }

    /// The message of the 503.
    pub(crate) fn message(self) -> String {
        match self {
            Shed::Requests => "overloaded: too many requests in flight; retry later".into(),
            Shed::Bytes => "overloaded: too many bytes in flight; retry later".into(),
        }
    }
}

/// The bounds and what is taken of them.
#[derive(Debug)]
pub(crate) struct Admission {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    cpu: Semaphore,
    max_requests: usize,
    max_units: usize,
}

/// Bytes held by one request: what of its body has arrived, then what it holds while its
/// lines wait to be written (the larger). Given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

/// An admitted request's share: a request slot and its bytes; given back when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    _request: OwnedSemaphorePermit,
    pub(crate) reservation: Reservation,
}

impl Admission {
    /// At most `requests` requests and `bytes` bytes in flight, and `cores` requests'
    /// validation at once (each at least 1).
    pub(crate) fn new(requests: usize, bytes: usize, cores: usize) -> Self {
        let max_units = units(bytes).clamp(1, u32::MAX as usize);
        let max_requests = requests.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            bytes: Arc::new(Semaphore::new(max_units)),
            cpu: Semaphore::new(cores.max(1)),
            max_units,
        }
    }

    /// Whether a request declaring `bytes` would be taken now. Nothing is taken: a body
    /// holds bytes only as it arrives ([`Admission::grow`]), and a slot only once it is in
    /// ([`Admission::admit`]), so connections that trickle hold next to nothing.
    pub(crate) fn check(&self, bytes: usize) -> Result<(), Shed> {
        if self.requests.available_permits() == 0 {
            return Err(Shed::Requests);
        }
        if units(bytes).min(self.max_units) > self.bytes.available_permits() {
            return Err(Shed::Bytes);
        }
        Ok(())
    }

    /// A reservation holding nothing yet.
    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            bytes: 0,
            permit: None,
        }
    }

    /// Raises `reservation` to hold `bytes` in all (never lowers it), or says why not. A
    /// request may hold the whole bound, never more: one larger than the bound is taken
    /// when it is alone.
    pub(crate) fn hold(&self, reservation: &mut Reservation, bytes: usize) -> Result<(), Shed> {
        if bytes <= reservation.bytes {
            return Ok(());
        }
        let have = reservation.permit.as_ref().map_or(0, |p| p.num_permits());
        let need = units(bytes).min(self.max_units);
        if need > have {
            let more = u32::try_from(need - have).map_err(|_| Shed::Bytes)?;
            let permit = match self.bytes.clone().try_acquire_many_owned(more) {
                Ok(p) => p,
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                    return Err(Shed::Bytes)
                }
            };
            match &mut reservation.permit {
                Some(held) => held.merge(permit),
                None => reservation.permit = Some(permit),
            }
        }
        reservation.bytes = bytes;
        Ok(())
    }

    /// Adds `bytes` to what `reservation` holds (a part of the body that arrived).
    pub(crate) fn grow(&self, reservation: &mut Reservation, bytes: usize) -> Result<(), Shed> {
        self.hold(reservation, reservation.bytes.saturating_add(bytes))
    }

    /// Takes a request slot for a request whose body is in.
    pub(crate) fn admit(&self, reservation: Reservation) -> Result<Admitted, Shed> {
        let request = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| Shed::Requests)?;
        Ok(Admitted {
            _request: request,
            reservation,
        })
    }

    /// A turn at the CPU for one request's validation; waits (parked) while every core's
    /// turn is taken.
    pub(crate) async fn cpu(&self) -> Option<SemaphorePermit<'_>> {
        self.cpu.acquire().await.ok()
    }

    /// Requests in flight now.
    pub(crate) fn requests_in_flight(&self) -> usize {
        self.max_requests
            .saturating_sub(self.requests.available_permits())
    }

    /// Bytes held now (in whole KiB).
    pub(crate) fn bytes_in_flight(&self) -> usize {
        (self.max_units - self.bytes.available_permits().min(self.max_units)) * UNIT
    }
}

#[cfg(test)]
impl Reservation {
    /// KiB this reservation holds.
    fn units(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// How many bytes to reserve for a request before its body is read: what it declares, or
/// the body limit when it declares nothing (chunked) or more than the limit (it will be
/// refused as too large once that many bytes arrived, so it cannot hold more).
pub(crate) fn expected_bytes(content_length: Option<&str>, max_body: usize) -> usize {
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(max_body, |n| {
            usize::try_from(n).unwrap_or(usize::MAX).min(max_body)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_bytes_follow_the_declared_length_within_the_body_limit() {
        let table: &[(Option<&str>, usize)] = &[
            (None, 1000),
            (Some("0"), 0),
            (Some("10"), 10),
            (Some(" 10 "), 10),
            (Some("1000"), 1000),
            (Some("5000"), 1000),
            (Some("-1"), 1000),
            (Some("ten"), 1000),
            (Some("99999999999999999999999"), 1000),
        ];
        for (declared, expected) in table {
            assert_eq!(expected_bytes(*declared, 1000), *expected, "{declared:?}");
        }
    }

    #[test]
    fn requests_and_bytes_are_bounded_and_given_back() {
        let admission = Admission::new(2, 10 * UNIT, 1);
        assert_eq!(admission.check(4 * UNIT), Ok(()));
        let mut a = admission.reservation();
        // A trickling body holds what arrived, byte by byte, in whole KiB.
        for _ in 0..10 {
            admission.grow(&mut a, 1).unwrap();
        }
        assert_eq!((a.units(), admission.bytes_in_flight()), (1, UNIT));
        admission.grow(&mut a, 4 * UNIT - 10).unwrap();
        assert_eq!(a.units(), 4);
        let a = admission.admit(a).unwrap();
        let mut b = admission.reservation();
        admission.grow(&mut b, 4 * UNIT).unwrap();
        let mut b = admission.admit(b).unwrap();
        // Every slot taken: the next is shed before anything is read.
        assert_eq!(admission.check(0), Err(Shed::Requests));
        assert_eq!(
            admission.admit(admission.reservation()).unwrap_err(),
            Shed::Requests
        );
        assert_eq!(admission.requests_in_flight(), 2);
        // Two KiB left: holding more than that is refused, up to it is not.
        assert_eq!(
            admission.hold(&mut b.reservation, 7 * UNIT),
            Err(Shed::Bytes)
        );
        admission.hold(&mut b.reservation, 6 * UNIT).unwrap();
        admission.hold(&mut b.reservation, UNIT).unwrap(); // never lowered
        assert_eq!(b.reservation.units(), 6);
        drop(a);
        assert_eq!(admission.requests_in_flight(), 1);
        assert_eq!(admission.check(5 * UNIT), Err(Shed::Bytes));
        assert_eq!(admission.check(4 * UNIT), Ok(()));
        drop(b);
        assert_eq!(admission.bytes_in_flight(), 0);
        // Larger than the whole bound: may hold all of it when alone, not more.
        let mut big = admission.reservation();
        assert_eq!(admission.check(100 * UNIT), Ok(()));
        admission.grow(&mut big, 100 * UNIT).unwrap();
        assert_eq!(big.units(), 10);
        assert_eq!(admission.check(1), Err(Shed::Bytes));
        drop(big);
        assert_eq!(admission.check(1), Ok(()));
    }
}
