//! Admission: how much work the collector takes on at once. A batch request is admitted
//! before its body is read, when a request slot and room for its body are free; otherwise it
//! is shed at once with 503 and `Retry-After` (nothing read, nothing stored, the sender
//! retries later), instead of queueing without bound. `/healthz` and `/metrics` are never
//! shed.
//!
//! Bytes are counted as sent before the body is read (the declared `Content-Length`, or the
//! body limit when none is declared), and the decompressed size is added once known.
//! Validation's CPU work is admitted separately, one request per core at a time
//! ([`Admission::cpu`]), so that a backlog of validation never stands in the async
//! runtime's queues in front of a health check.

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
    max_units: usize,
}

/// An admitted request's share; given back when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    _request: OwnedSemaphorePermit,
    bytes: OwnedSemaphorePermit,
}

impl Admission {
    /// At most `requests` requests and `bytes` bytes in flight, and `cores` requests'
    /// validation at once (each at least 1).
    pub(crate) fn new(requests: usize, bytes: usize, cores: usize) -> Self {
        let max_units = units(bytes).clamp(1, u32::MAX as usize);
        Admission {
            requests: Arc::new(Semaphore::new(requests.max(1))),
            bytes: Arc::new(Semaphore::new(max_units)),
            cpu: Semaphore::new(cores.max(1)),
            max_units,
        }
    }

    /// Admits a request expected to bring `bytes` bytes, or says why not.
    pub(crate) fn try_admit(&self, bytes: usize) -> Result<Admitted, Shed> {
        let request = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| Shed::Requests)?;
        let bytes = self.take(bytes)?;
        Ok(Admitted {
            _request: request,
            bytes,
        })
    }

    /// Adds `bytes` more to an admitted request (its decompressed body), or says why not.
    pub(crate) fn grow(&self, admitted: &mut Admitted, bytes: usize) -> Result<(), Shed> {
        if bytes == 0 {
            return Ok(());
        }
        let more = self.take(bytes)?;
        admitted.bytes.merge(more);
        Ok(())
    }

    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, Shed> {
        // A request larger than the whole bound is admitted alone rather than never.
        let n = units(bytes).clamp(1, self.max_units);
        let n = u32::try_from(n).map_err(|_| Shed::Bytes)?;
        match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(p) => Ok(p),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(Shed::Bytes),
        }
    }

    /// A turn at the CPU for one request's validation; waits (parked, off the runtime's
    /// queues) while every core's turn is taken.
    pub(crate) async fn cpu(&self) -> Option<SemaphorePermit<'_>> {
        self.cpu.acquire().await.ok()
    }

    /// Requests in flight now.
    pub(crate) fn requests_in_flight(&self, max: usize) -> usize {
        max.max(1).saturating_sub(self.requests.available_permits())
    }

    /// Bytes reserved now (in whole KiB).
    pub(crate) fn bytes_in_flight(&self) -> usize {
        (self.max_units - self.bytes.available_permits().min(self.max_units)) * UNIT
    }
}

#[cfg(test)]
impl Admitted {
    /// Bytes this request holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.num_permits() * UNIT
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
        let a = admission.try_admit(4 * UNIT).unwrap();
        let mut b = admission.try_admit(4 * UNIT).unwrap();
        assert_eq!(admission.try_admit(0).unwrap_err(), Shed::Requests);
        assert_eq!(admission.bytes_in_flight(), 8 * UNIT);
        assert_eq!(admission.grow(&mut b, 3 * UNIT), Err(Shed::Bytes));
        admission.grow(&mut b, 2 * UNIT).unwrap();
        assert_eq!(b.bytes(), 6 * UNIT);
        assert_eq!(admission.requests_in_flight(2), 2);
        drop(a);
        assert_eq!(admission.requests_in_flight(2), 1);
        assert_eq!(admission.try_admit(5 * UNIT).unwrap_err(), Shed::Bytes);
        let c = admission.try_admit(4 * UNIT).unwrap();
        drop((b, c));
        assert_eq!(admission.bytes_in_flight(), 0);
        // Larger than the whole bound: admitted alone, not never.
        let big = admission.try_admit(100 * UNIT).unwrap();
        assert_eq!(admission.try_admit(1).unwrap_err(), Shed::Bytes);
        drop(big);
        assert!(admission.try_admit(1).is_ok());
    }
}
