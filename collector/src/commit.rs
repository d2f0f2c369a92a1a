//! `POST /v1/batch` from the write key to the answer: the body validated, deduplicated and
//! committed to the good and the dead-letter sinks, what was written counted, and a request
//! refused as a whole dead-lettered before it is answered.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use eventwire_schema::protocol::{BatchResponse, ErrorCode, Rejection};

use crate::admission::{expected_bytes, Admitted, Reservation, Shed};
use crate::committer::{Dead, Good, Job};
use crate::dev::Kind;
use crate::ingest::{bearer, check_content_type, decode, BatchQuery};
use crate::record::{DeadLetter, ErrorDetail};
use crate::refusal::{Refusal, Refused};
use crate::server::Shared;
use crate::sink::SinkRecord;
use crate::time::format_timestamp;
use crate::validate::{resolve_all, BatchError, Checked, GoodEvent, Pass};
use tokio::sync::oneshot;

pub(crate) async fn batch(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<BatchQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A query string that does not parse (a repeated `write_key`…) carries no key; the
    // request is judged on the rest, never refused outside the collector's own answers.
    let query = query.map_or(BatchQuery { write_key: None }, |Query(q)| q);
    let started = Instant::now();
    let received_at = Utc::now();
    let (response, bytes) = shared
        .clone()
        .handle(received_at, query, headers, body)
        .await;
    shared.requests.fetch_add(1, Ordering::Relaxed);
    shared.metrics.request(
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
        bytes,
    );
    response
}

impl Shared {
    async fn handle(
        self: Arc<Self>,
        received_at: DateTime<Utc>,
        query: BatchQuery,
        headers: HeaderMap,
        body: Body,
    ) -> (Response, usize) {
        let received = format_timestamp(received_at);
        // With write keys, a stranger is turned away before anything is read, parsed, looked
        // up or stored: a key in the header or the query now, one in the body right after the
        // body arrives (a bounded scan, before any parsing).
        let header_key = bearer(&headers).or(query.write_key);
        let keys = !self.write_keys.is_empty();
        if keys
            && header_key
                .as_deref()
                .is_some_and(|k| !self.known_key(k.as_bytes()))
        {
            return (Refusal::Unauthorized.into_response(), 0);
        }
        // Past the bound of work in flight, shed now: 503 and `Retry-After`, nothing read.
        let expected = expected_bytes(
            headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()),
            self.pipeline.limits().max_body_bytes,
        );
        if let Err(shed) = self.admission.check(expected) {
            return (self.shed(shed), 0);
        }
        let mut reservation = self.admission.reservation();
        // From here on, whatever is started runs to its end even if the client goes away
        // (hyper drops this future then): a sink write that began is finished and recorded.
        // Without a key in the header, the body's first 4 KiB must hold one: checked once
        // they are in (or the body ended or failed sooner), and a stranger's body is not read
        // further (nor dead-lettered when it fails to arrive).
        let body_key = keys && header_key.is_none();
        let read = self
            .read_body(body, body_key.then_some(&headers), &mut reservation)
            .await;
        let raw = match read {
            Ok(raw) => raw,
            Err(refused) if refused.refusal == Refusal::Unauthorized => {
                return (refused.refusal.into_response(), 0)
            }
            Err(refused) => return (self.spawn_refusal(received, refused, reservation).await, 0),
        };
        // The body is in: a request slot now, or shed if they were all taken meanwhile.
        let mut admitted = match self.admission.admit(reservation) {
            Ok(admitted) => admitted,
            Err(shed) => return (self.shed(shed), raw.len()),
        };
        let len = raw.len();
        let shared = self.clone();
        // Holds its share of the bounds until answered, dead letters included.
        let work = tokio::spawn(async move {
            let answer = shared
                .process(received_at, headers, raw, &mut admitted)
                .await;
            match answer {
                Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
                Err(refused) => shared.refuse(&received, refused).await,
            }
        });
        let response = work.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "a batch's processing task failed");
            Refusal::Unavailable("the request could not be processed".into()).into_response()
        });
        (response, len)
    }

    /// The answer to a request shed by admission, counted.
    fn shed(&self, shed: Shed) -> Response {
        self.metrics.shed(shed.as_str());
        Refusal::Overloaded(shed).into_response()
    }

    /// [`Shared::refuse`] in a task of its own, so that a dead letter is written whole even
    /// if the client goes away meanwhile; it holds the request's bytes until then.
    async fn spawn_refusal(
        self: Arc<Self>,
        received: String,
        refused: Refused,
        reservation: Reservation,
    ) -> Response {
        let shared = self.clone();
        tokio::spawn(async move {
            let _held = reservation;
            shared.refuse(&received, refused).await
        })
        .await
        .unwrap_or_else(|_| {
            Refusal::Unavailable("the request could not be processed".into()).into_response()
        })
    }

    /// Decodes and validates the body on a core of its own, off the async threads; when it
    /// names schemas the registry's caches do not hold, looks them up and validates again
    /// (only the first requests naming a schema pay that). The parsed events exist only
    /// there (one request per core); while its lines wait to be written, the request holds
    /// their size in `admitted` if that is more than its body.
    async fn process(
        self: &Arc<Self>,
        received_at: DateTime<Utc>,
        headers: HeaderMap,
        raw: Vec<u8>,
        admitted: &mut Admitted,
    ) -> Result<BatchResponse, Refused> {
        check_content_type(&headers, &raw)?;
        let (headers, raw) = (Arc::new(headers), Arc::new(raw));
        let mut resolved = Arc::new(HashMap::new());
        let (tally, good, bad) = loop {
            let (shared, headers, raw, lookups) =
                (self.clone(), headers.clone(), raw.clone(), resolved.clone());
            let pass = self
                .on_a_core(move || {
                    let limit = shared.pipeline.limits().max_body_bytes;
                    let plain = decode(&headers, &raw, limit)?;
                    let pass = shared
                        .pipeline
                        .check_with(&plain, received_at, &shared.registry, &lookups)
                        .map_err(|e| refused(e, &plain))?;
                    Ok(match pass {
                        Pass::Checked(checked) => Ok(records(checked)),
                        Pass::Missing(uris) => Err(uris),
                    })
                })
                .await?;
            match pass {
                Ok(done) => break done,
                Err(uris) if resolved.is_empty() => {
                    let lookups = resolve_all(&self.registry, uris.iter().map(String::as_str))
                        .await
                        .map_err(|e| refused(e, b""))?;
                    resolved = Arc::new(lookups);
                }
                Err(uris) => {
                    return Err(refused(
                        BatchError::RegistryUnavailable(format!("schemas not resolved: {uris:?}")),
                        b"",
                    ))
                }
            }
        };
        let lines: usize = good.iter().map(|g| g.record.line.len()).sum::<usize>()
            + bad.iter().map(|d| d.record.line.len()).sum::<usize>();
        self.admission
            .hold(&mut admitted.reservation, lines)
            .map_err(|shed| Refused::from(Refusal::Overloaded(shed)))?;
        self.commit(tally, good, bad).await
    }

    /// Runs CPU-bound work on a blocking thread, one request per core at a time: the async
    /// threads stay free to read requests and answer `/healthz` and `/metrics`.
    async fn on_a_core<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Refused> + Send + 'static,
    ) -> Result<T, Refused> {
        let _turn = self.admission.cpu().await;
        tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "a batch's validation failed");
            Err(Refusal::Unavailable("the request could not be processed".into()).into())
        })
    }

    /// Hands the records to the group commit and waits for its word on them; counts what
    /// was written, and answers. A sink failure answers 503, with what a sink did take
    /// remembered (and counted), so the resend does not write it again.
    async fn commit(
        &self,
        tally: Tally,
        good: Vec<Good>,
        bad: Vec<Dead>,
    ) -> Result<BatchResponse, Refused> {
        let (reply, answer) = oneshot::channel();
        let gone = || Refused::from(Refusal::Unavailable("the commit task is gone".into()));
        self.commits()
            .send(Job { good, bad, reply })
            .await
            .map_err(|_| gone())?;
        let committed = answer.await.map_err(|_| gone())?;
        let pick = |indices: &[usize]| -> Vec<&GoodEvent> {
            indices.iter().filter_map(|&i| tally.good.get(i)).collect()
        };
        let pick_bad = |indices: &[usize]| -> Vec<&BadTally> {
            indices.iter().filter_map(|&i| tally.bad.get(i)).collect()
        };
        let (fresh, duplicates) = (pick(&committed.written), pick(&committed.duplicates));
        self.account_good(&fresh, &duplicates, committed.good_lines.iter());
        self.account_bad(
            &pick_bad(&committed.dead_written),
            &pick_bad(&committed.dead_repeated),
            committed.bad_lines.iter(),
        );
        if let Some(why) = committed.failure {
            return Err(Refusal::Unavailable(why).into());
        }
        Ok(BatchResponse {
            accepted: fresh.len() as u64,
            duplicates: duplicates.len() as u64,
            rejected: tally
                .bad
                .into_iter()
                .map(|b| Rejection {
                    index: b.index,
                    event_id: b.event_id,
                    code: b.code.as_str().to_owned(),
                })
                .collect(),
        })
    }

    /// Counts good events written (`fresh`, whose `records` went to the good sink) and
    /// duplicates dropped: metrics, totals, unique users, the dev view.
    fn account_good<'r>(
        &self,
        fresh: &[&GoodEvent],
        duplicates: &[&GoodEvent],
        records: impl Iterator<Item = &'r SinkRecord>,
    ) {
        for g in fresh {
            self.metrics
                .accepted(g.service.as_deref(), g.version.as_deref());
        }
        for d in duplicates {
            self.metrics
                .duplicate(d.service.as_deref(), d.version.as_deref());
        }
        self.accepted
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(duplicates.len() as u64, Ordering::Relaxed);
        self.count_uniques(fresh);
        self.remember_recent(Kind::Good, records);
    }

    /// Counts dead letters written (`written`, whose `records` went to the dead-letter sink)
    /// and refused events whose dead letter was already written (`repeated`, counted as
    /// duplicates: nothing written again).
    fn account_bad<'r>(
        &self,
        written: &[&BadTally],
        repeated: &[&BadTally],
        records: impl Iterator<Item = &'r SinkRecord>,
    ) {
        for b in written {
            self.metrics
                .rejected(b.code.as_str(), b.service.as_deref(), b.version.as_deref());
        }
        for b in repeated {
            self.metrics
                .duplicate(b.service.as_deref(), b.version.as_deref());
        }
        self.rejected
            .fetch_add(written.len() as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(repeated.len() as u64, Ordering::Relaxed);
        self.remember_recent(Kind::Bad, records);
    }

    fn count_uniques(&self, events: &[&GoodEvent]) {
        if events.is_empty() {
            return;
        }
        let now = Utc::now().timestamp();
        let mut uniques = self
            .uniques
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for g in events {
            if let Some(user) = &g.user {
                uniques.record(&g.schema, user, now);
            }
        }
    }

    /// Answers a refused request, dead-lettering it first when it should be kept. A dead
    /// letter that cannot be written turns the refusal into a 503 the sender retries:
    /// nothing it sent may vanish. A request shed by admission is answered 503 and counted.
    async fn refuse(&self, received: &str, refused: Refused) -> Response {
        let Refused { refusal, raw } = refused;
        if let Refusal::Overloaded(shed) = refusal {
            return self.shed(shed);
        }
        if refusal.dead_letter() {
            let message = refusal.message();
            let dead = DeadLetter::for_raw(
                received,
                refusal.code(),
                vec![ErrorDetail::new("", "request", message.clone())],
                &raw,
            );
            let record = SinkRecord {
                key: None,
                line: serde_json::to_vec(&dead).unwrap_or_default(),
            };
            if let Err(e) = self.bad.write(std::slice::from_ref(&record)).await {
                tracing::error!(error = %e, "dead-letter sink refused a record; answering 503");
                return Refusal::Unavailable(format!(
                    "{message} (and the dead-letter sink is unavailable: {e})"
                ))
                .into_response();
            }
            self.rejected.fetch_add(1, Ordering::Relaxed);
            self.metrics.rejected(refusal.code().as_str(), None, None);
            self.remember_recent(Kind::Bad, std::iter::once(&record));
        }
        refusal.into_response()
    }
}

/// What the counters and the answer need of a checked batch, without its lines and its
/// dead letters' events (moved or dropped before the request waits for the commit).
struct Tally {
    /// The good events, their lines taken out.
    good: Vec<GoodEvent>,
    bad: Vec<BadTally>,
}

/// A refused event's place, id, code and labels.
struct BadTally {
    index: usize,
    event_id: Option<String>,
    code: ErrorCode,
    service: Option<String>,
    version: Option<String>,
}

/// The answer to a batch refused as a whole.
fn refused(e: BatchError, plain: &[u8]) -> Refused {
    match e {
        BatchError::Malformed(m) => Refused::new(Refusal::Malformed(m), plain),
        e @ BatchError::TooManyEvents { .. } => {
            Refused::new(Refusal::PayloadTooLarge(e.to_string()), plain)
        }
        e @ BatchError::RegistryUnavailable(_) => {
            tracing::warn!(error = %e, "answering 503");
            Refusal::Unavailable(e.to_string()).into()
        }
    }
}

/// The lines a checked batch writes: each good event's record with the key its id is
/// remembered by, each dead letter's with the key its refusal is remembered by; and what is
/// left to count.
fn records(checked: Checked) -> (Tally, Vec<Good>, Vec<Dead>) {
    let mut good_events = checked.good;
    let good = good_events
        .iter_mut()
        .map(|g| Good {
            key: crate::dedup::key(&g.event_id),
            record: SinkRecord {
                key: Some(crate::dedup::canonical_id(&g.event_id)),
                line: std::mem::take(&mut g.line),
            },
        })
        .collect();
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let (bad, bad_tally) = checked
        .bad
        .iter()
        .map(|b| {
            let dead = Dead {
                key: dead_letter_key(&b.dead),
                record: SinkRecord {
                    key: b.dead.event_id().map(crate::dedup::canonical_id),
                    line: serde_json::to_vec(&b.dead).unwrap_or_default(),
                },
            };
            let tally = BadTally {
                index: b.index,
                event_id: owned(b.dead.event_id()),
                code: b.dead.code,
                service: owned(dead_letter_label(&b.dead, "service")),
                version: owned(dead_letter_label(&b.dead, "version")),
            };
            (dead, tally)
        })
        .unzip();
    let tally = Tally {
        good: good_events,
        bad: bad_tally,
    };
    (tally, good, bad)
}

/// What a dead letter is remembered by across resends: its code and the event as received,
/// so only the same refusal of the same event is not written twice. A dead letter without
/// a parsed event (its raw bytes, perhaps cut) has no reliable identity: `None`, always
/// written.
fn dead_letter_key(dead: &DeadLetter) -> Option<u128> {
    let event = serde_json::to_vec(dead.event.as_ref()?).ok()?;
    Some(crate::dedup::fingerprint(&[
        dead.code.as_str().as_bytes(),
        &event,
    ]))
}

/// A `context.labels` value of a dead letter's event.
fn dead_letter_label<'a>(dead: &'a DeadLetter, label: &str) -> Option<&'a str> {
    dead.event
        .as_ref()?
        .get("context")?
        .get("labels")?
        .get(label)?
        .as_str()
}
