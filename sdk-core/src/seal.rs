//! Personal data sealed before it leaves the app: which events need it (decided by `track()`
//! on the caller's thread, from the schemas' marks) and the sealing itself (on the first
//! thread the tracker owns: the spool thread with a spool, else the worker).
//!
//! A property whose schema carries `"x-pii": true` is personal data ([`eventwire_pii`]). The
//! tracker knows a schema's marks from a generated type ([`SelfDescribing::PII`]), from a
//! table of them ([`TrackerBuilder::pii_marks`], generated as `PII_MARKS`) or from the
//! schemas themselves ([`TrackerBuilder::pii_schemas`]). With a public key
//! ([`TrackerBuilder::pii_public_key`]) each marked value present in the event's `data` or
//! in an entity's `data` is replaced by its sealed value; without one, `track()` refuses the
//! event ([`TrackError::PiiWithoutKey`]) unless the app chose to send marked fields in clear
//! ([`TrackerBuilder::send_pii_in_clear`]).
//!
//! Until it is sealed, the plaintext is in the tracker's memory only: the envelope in the
//! bounded queue between `track()` and the sealing thread. It is never written to the
//! spool, logged or sent in clear.
//!
//! [`SelfDescribing::PII`]: crate::SelfDescribing::PII
//! [`TrackerBuilder::pii_marks`]: crate::TrackerBuilder::pii_marks
//! [`TrackerBuilder::pii_schemas`]: crate::TrackerBuilder::pii_schemas
//! [`TrackerBuilder::pii_public_key`]: crate::TrackerBuilder::pii_public_key
//! [`TrackerBuilder::send_pii_in_clear`]: crate::TrackerBuilder::send_pii_in_clear
//! [`TrackError::PiiWithoutKey`]: crate::TrackError::PiiWithoutKey

use std::collections::HashMap;
use std::sync::Arc;

use eventwire_pii::PublicKey;
use eventwire_schema::pii::{self, Marks};
use serde_json::Value;

use crate::event::EncodedEvent;
use crate::protocol::{Entity, Event, MAX_STRING_BYTES};
use crate::stats::DropReason;

/// What `track()` decided for one event: whether, and by which marks, the sealing thread
/// seals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Seal {
    /// Nothing to seal (no marks known for its schemas, or marked fields go in clear).
    #[default]
    No,
    /// Seal by the marks the tracker holds for the event's and entities' schemas.
    Known,
    /// Seal the data by a generated type's marks, the entities by the marks held.
    Typed(&'static [&'static str]),
}

/// The marks the tracker knows, by schema URI.
pub(crate) type MarksBySchema = HashMap<String, Marks>;

/// The tracker's personal-data settings, shared by `track()` and the sealing thread.
pub(crate) struct PiiPolicy {
    pub(crate) key: Option<PublicKey>,
    pub(crate) in_clear: bool,
    pub(crate) marks: Arc<MarksBySchema>,
}

/// `track()` refused an event: its schema (named) has marks and no key is configured.
#[derive(Debug)]
pub(crate) struct NoKey(pub(crate) String);

impl PiiPolicy {
    /// What the sealing thread does with an event of `schema` (whose data a generated type
    /// marks at `typed`) with `entities`. Costs nothing when no marks are known.
    pub(crate) fn plan(
        &self,
        schema: &str,
        typed: &'static [&'static str],
        entities: &[Entity],
    ) -> Result<Seal, NoKey> {
        let marks = &self.marks;
        if typed.is_empty() && marks.is_empty() && !pii::any_learned() {
            return Ok(Seal::No);
        }
        let known = |uri: &str| {
            marks.get(uri).is_some_and(|m| !m.is_empty()) || pii::learned(uri).is_some()
        };
        let marked = if !typed.is_empty() || known(schema) {
            Some(schema)
        } else {
            entities
                .iter()
                .find(|e| known(&e.schema))
                .map(|e| e.schema.as_str())
        };
        let Some(marked) = marked else {
            return Ok(Seal::No);
        };
        match (&self.key, self.in_clear) {
            (_, true) => Ok(Seal::No),
            (None, false) => Err(NoKey(marked.to_owned())),
            (Some(_), false) if typed.is_empty() => Ok(Seal::Known),
            (Some(_), false) => Ok(Seal::Typed(typed)),
        }
    }
}

impl PiiPolicy {
    /// Seals `event` as `track()` planned (once: the plan is cleared). The envelope may
    /// grow (by about 130 bytes and a third of the value per sealed value): the caller
    /// accounts for the new size.
    pub(crate) fn seal(&self, event: &mut EncodedEvent) -> Result<(), SealFailure> {
        let seal = std::mem::take(&mut event.seal);
        match (&self.key, seal) {
            (_, Seal::No) => Ok(()),
            (Some(key), seal) => seal_event(key, &self.marks, seal, event),
            (None, _) => Err(SealFailure::NoKey),
        }
    }
}

/// How sealing changed an event's size, for the byte counters that admitted it.
pub(crate) enum Resized {
    /// It grew by this many bytes.
    Grew(usize),
    /// It shrank by this many bytes (a value whose sealed form is shorter: none today).
    Shrank(usize),
}

impl PiiPolicy {
    /// Seals `event` as planned and checks it still fits: `Ok` with how its size changed,
    /// or the reason to drop it (`too_large` over `max_event_bytes` or a collector's string
    /// limit once sealed; `pii_unsealed` when sealing failed, logged without the event).
    /// The size change comes back in every case: the caller applies it to its byte
    /// counters first, then settles a dropped event with its current size.
    pub(crate) fn seal_within(
        &self,
        event: &mut EncodedEvent,
        max_event_bytes: usize,
    ) -> (Resized, Result<(), DropReason>) {
        let before = event.len();
        let verdict = match self.seal(event) {
            Ok(()) if event.len() <= max_event_bytes => Ok(()),
            Ok(()) | Err(SealFailure::TooLarge) => Err(DropReason::TooLarge),
            Err(e) => {
                tracing::error!(error = %e, "could not seal an event's personal data: dropped (pii_unsealed)");
                Err(DropReason::PiiUnsealed)
            }
        };
        let resized = match event.len().checked_sub(before) {
            Some(grew) => Resized::Grew(grew),
            None => Resized::Shrank(before - event.len()),
        };
        (resized, verdict)
    }
}

/// Why an event could not be sealed (it is then dropped as `pii_unsealed`; nothing of it
/// is sent).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealFailure {
    /// No key (`track()` plans sealing only with one).
    #[error("no public key to seal with")]
    NoKey,
    /// The envelope could not be read back (not the tracker's own).
    #[error("the envelope is not an event: {0}")]
    Envelope(String),
    /// HPKE refused.
    #[error(transparent)]
    Seal(#[from] eventwire_pii::SealError),
    /// A sealed value is longer than a collector takes a string (sealing grows a value by
    /// about a third): dropped as `too_large`.
    #[error("a sealed value is over the collector's {MAX_STRING_BYTES}-byte string limit")]
    TooLarge,
}

/// Seals the marked values of `event` as `seal` says, with `key`: each becomes
/// `ew1.<key id>.<enc>.<ciphertext>`, bound to the event id, its schema and its pointer.
/// The envelope keeps its member order; it is written again (the members of `data` and of
/// entities sorted) only when something was sealed, and left as it is on an error.
fn seal_event(
    key: &PublicKey,
    marks: &MarksBySchema,
    seal: Seal,
    event: &mut EncodedEvent,
) -> Result<(), SealFailure> {
    let typed;
    let data_marks = match seal {
        Seal::No => return Ok(()),
        Seal::Known => None,
        Seal::Typed(pointers) => {
            typed = Marks::from_pointers(pointers);
            Some(&typed)
        }
    };
    let mut envelope: Event =
        serde_json::from_slice(&event.json).map_err(|e| SealFailure::Envelope(e.to_string()))?;
    let id = envelope.event_id.to_string();
    let mut sealed = 0;
    // The marks `plan` found: a type's, the table's, or those a type taught (`learned`).
    let learned = match data_marks.or_else(|| marks.get(&envelope.schema)) {
        Some(_) => None,
        None => pii::learned(&envelope.schema).map(Marks::from_pointers),
    };
    let data_marks = data_marks
        .or_else(|| marks.get(&envelope.schema))
        .or(learned.as_ref());
    if let Some(marks) = data_marks {
        sealed += seal_places(
            key,
            &id,
            &envelope.schema,
            "/data",
            marks,
            &mut envelope.data,
        )?;
    }
    for (i, entity) in envelope.entities.iter_mut().enumerate() {
        let learned = match marks.get(&entity.schema) {
            Some(_) => None,
            None => pii::learned(&entity.schema).map(Marks::from_pointers),
        };
        if let Some(marks) = marks.get(&entity.schema).or(learned.as_ref()) {
            let prefix = format!("/entities/{i}/data");
            sealed += seal_places(key, &id, &entity.schema, &prefix, marks, &mut entity.data)?;
        }
    }
    if sealed > 0 {
        event.json =
            serde_json::to_vec(&envelope).map_err(|e| SealFailure::Envelope(e.to_string()))?;
    }
    Ok(())
}

/// Seals the values at `marks` in `data` (the instance at `prefix` in the event, of
/// `schema`); returns how many.
fn seal_places(
    key: &PublicKey,
    event_id: &str,
    schema: &str,
    prefix: &str,
    marks: &Marks,
    data: &mut Value,
) -> Result<usize, SealFailure> {
    let places = marks.places(data);
    for place in &places {
        // Found by `places` but not by the pointer: nothing is sent rather than a value in
        // clear (cannot happen: both read pointers as RFC 6901 does).
        let value = data
            .pointer_mut(place)
            .ok_or_else(|| SealFailure::Envelope(format!("no value at {prefix}{place}")))?;
        let pointer = format!("{prefix}{place}");
        let text = eventwire_pii::seal(key, event_id, schema, &pointer, value)?;
        if text.len() > MAX_STRING_BYTES {
            return Err(SealFailure::TooLarge);
        }
        *value = Value::String(text);
    }
    Ok(places.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventwire_pii::{open, Keyring, PrivateKey};

    fn policy(key: Option<PublicKey>, in_clear: bool) -> PiiPolicy {
        let mut marks = MarksBySchema::new();
        marks.insert(
            "iglu:a/signup/jsonschema/1-0-0".into(),
            Marks::from_pointers(&["/email"]),
        );
        marks.insert("iglu:a/none/jsonschema/1-0-0".into(), Marks::default());
        PiiPolicy {
            key,
            in_clear,
            marks: Arc::new(marks),
        }
    }

    fn entity(schema: &str) -> Entity {
        Entity {
            schema: schema.into(),
            data: serde_json::json!({}),
        }
    }

    #[test]
    fn the_plan_by_the_table() {
        let key = Some(PrivateKey::derive(b"plan").public_key().clone());
        let marked = "iglu:a/signup/jsonschema/1-0-0";
        let unmarked = "iglu:a/none/jsonschema/1-0-0";
        let unknown = "iglu:a/other/jsonschema/1-0-0";
        const TYPED: &[&str] = &["/name"];
        // (key, in clear, schema, typed marks, entity schemas) → plan (None: refused)
        type Row<'a> = (
            bool,
            bool,
            &'a str,
            &'static [&'static str],
            &'a [&'a str],
            Option<Seal>,
        );
        let rows: [Row<'_>; 9] = [
            (true, false, unknown, &[], &[], Some(Seal::No)),
            (true, false, unmarked, &[], &[unmarked], Some(Seal::No)),
            (true, false, marked, &[], &[], Some(Seal::Known)),
            (true, false, unknown, &[], &[marked], Some(Seal::Known)),
            (true, false, unknown, TYPED, &[], Some(Seal::Typed(TYPED))),
            (false, false, marked, &[], &[], None),
            (false, false, unknown, &[], &[marked], None),
            (false, false, unknown, TYPED, &[], None),
            (false, true, marked, TYPED, &[marked], Some(Seal::No)),
        ];
        for (with_key, in_clear, schema, typed, entities, want) in rows {
            let p = policy(key.clone().filter(|_| with_key), in_clear);
            let entities: Vec<Entity> = entities.iter().map(|s| entity(s)).collect();
            let got = p.plan(schema, typed, &entities).ok();
            assert_eq!(
                got, want,
                "{with_key} {in_clear} {schema} {typed:?} {entities:?}"
            );
        }
    }

    #[test]
    fn sealed_values_open_at_their_place_and_nothing_else_changes() {
        let private = PrivateKey::derive(b"seal-event");
        let key = private.public_key().clone();
        let p = policy(Some(key.clone()), false);
        let id = uuid::Uuid::now_v7();
        let event = serde_json::json!({
            "event_id": id, "schema": "iglu:a/other/jsonschema/1-0-0",
            "data": {"name": {"first": "Ada"}, "n": 1},
            "created_at": "2026-11-30T00:00:00.000Z",
            "entities": [
                {"schema": "iglu:a/none/jsonschema/1-0-0", "data": {"email": "keep"}},
                {"schema": "iglu:a/signup/jsonschema/1-0-0", "data": {"email": "ada@example.com"}},
            ],
            "context": {"labels": {}, "library": {"name": "x", "version": "1"}, "anonymous_id": "a"},
        });
        let mut encoded = EncodedEvent::new(id, "", serde_json::to_vec(&event).unwrap());
        encoded.seal = Seal::Typed(&["/name"]);
        p.seal(&mut encoded).unwrap();
        assert_eq!(encoded.seal, Seal::No, "sealed once");
        assert!(!String::from_utf8_lossy(encoded.json()).contains("ada@example.com"));
        assert!(!String::from_utf8_lossy(encoded.json()).contains("Ada"));
        let sealed: Value = serde_json::from_slice(encoded.json()).unwrap();
        let mut keys = Keyring::new();
        keys.add(private);
        let id = id.to_string();
        let name = sealed["data"]["name"].as_str().unwrap();
        let opened = open(
            &keys,
            &id,
            "iglu:a/other/jsonschema/1-0-0",
            "/data/name",
            name,
        );
        assert_eq!(opened.unwrap(), serde_json::json!({"first": "Ada"}));
        let email = sealed["entities"][1]["data"]["email"].as_str().unwrap();
        let schema = "iglu:a/signup/jsonschema/1-0-0";
        let at = "/entities/1/data/email";
        assert_eq!(
            open(&keys, &id, schema, at, email).unwrap(),
            "ada@example.com"
        );
        // Moved to the other entity's place, it does not open.
        assert!(open(&keys, &id, schema, "/entities/0/data/email", email).is_err());
        let mut rest = sealed.clone();
        rest["data"]["name"] = event["data"]["name"].clone();
        rest["entities"][1]["data"]["email"] = event["entities"][1]["data"]["email"].clone();
        assert_eq!(rest, event, "only the marked values changed");
        // The schema stays the envelope's first `schema` member (read back from a spool).
        let back = EncodedEvent::new(uuid::Uuid::nil(), "", encoded.json().to_vec());
        assert_eq!(back.schema(), "iglu:a/other/jsonschema/1-0-0");
        // Nothing marked present: the bytes are left as they were.
        let mut plain = EncodedEvent::new(id.parse().unwrap(), "", b"{}".to_vec());
        p.seal(&mut plain).unwrap();
        assert_eq!(plain.json(), b"{}");
        // A plan and no key (cannot happen through `track()`): an error, the bytes kept.
        let keyless = policy(None, false);
        let mut planned = EncodedEvent::new(id.parse().unwrap(), "", b"{}".to_vec());
        planned.seal = Seal::Known;
        assert!(matches!(
            keyless.seal(&mut planned),
            Err(SealFailure::NoKey)
        ));
        assert_eq!(planned.json(), b"{}");
    }
}
