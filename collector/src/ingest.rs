//! Reading a request: the write key (a `Bearer` header, the `write_key` query parameter or
//! the body's first bytes) and the check that guards the key holders' routes, the body
//! bounded in size and time, its content type, and its `Content-Encoding` undone within the
//! body limit.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::admission::Reservation;
use crate::refusal::{Refusal, Refused};
use crate::server::Shared;

#[derive(Debug, Deserialize)]
pub(crate) struct BatchQuery {
    pub(crate) write_key: Option<String>,
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// With write keys configured, the routes it guards are for key holders only (a `Bearer`
/// header or a `write_key` query parameter; a query that does not parse carries no key),
/// checked before the handler reads its query.
pub(crate) async fn key_holders_only(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !shared.write_keys.is_empty() {
        let query_key = Query::<BatchQuery>::try_from_uri(request.uri())
            .ok()
            .and_then(|Query(q)| q.write_key);
        let key = bearer(request.headers()).or(query_key);
        if !key.is_some_and(|k| shared.known_key(k.as_bytes())) {
            return Refusal::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

impl Shared {
    /// Whether `key` is one of the write keys; compared in constant time (per key).
    pub(crate) fn known_key(&self, key: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let mut known = subtle::Choice::from(0);
        for k in &self.write_keys {
            known |= k.as_bytes().ct_eq(key);
        }
        known.into()
    }

    /// A write key in the body of an uncompressed request (browsers put it there: a beacon
    /// cannot set headers), found by a bounded scan before any parsing.
    fn body_key_ok(&self, headers: &HeaderMap, raw: &[u8]) -> bool {
        // As `decode` reads it: none, empty or `identity` is plain.
        let encoded = headers.get(header::CONTENT_ENCODING).is_some_and(|v| {
            let v = v.as_bytes();
            !(v.is_empty() || v.eq_ignore_ascii_case(b"identity"))
        });
        !encoded && crate::auth::body_write_key(raw).is_some_and(|k| self.known_key(k))
    }

    /// Reads the body, bounded in size and time. With `key_in` (write keys required and
    /// none in the header or the query), the body must carry a known key in its first
    /// [`crate::auth::BODY_KEY_SCAN`] bytes: looked for once they are in, when the body ends
    /// or fails sooner, and when a part is refused as too large; a body whose first 4 KiB
    /// are in without one is not read further. A body that fails (too large, too
    /// slow, cut off) before a known key was seen is a stranger's: 401, nothing stored. Once
    /// the key is seen, a failure is the sender's usual 413/408/400.
    ///
    /// Each part holds its bytes in `reservation` as it arrives; past the bound of bytes in
    /// flight the request is shed (503, nothing stored).
    pub(crate) async fn read_body(
        &self,
        body: Body,
        key_in: Option<&HeaderMap>,
        reservation: &mut Reservation,
    ) -> Result<Vec<u8>, Refused> {
        let limit = self.pipeline.limits().max_body_bytes;
        let mut key_pending = key_in.is_some();
        let mut raw = Vec::new();
        let mut body = std::pin::pin!(body);
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        // While a key is pending, `raw` is shorter than the scan window. It is scanned when
        // the window is complete, when the body ends or fails, and when a part is refused as
        // too large: a few scans per request whatever the framing (not one per part).
        let key_seen = |raw: &[u8]| key_in.is_some_and(|h| self.body_key_ok(h, raw));
        let failed = |refused: Refused, raw: &[u8], pending: bool| {
            if pending && !key_seen(raw) {
                Refused::from(Refusal::Unauthorized)
            } else {
                refused
            }
        };
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.as_mut().frame()).await {
                Err(_) => {
                    let refused = Refused::new(Refusal::Timeout(self.body_timeout), b"");
                    return Err(failed(refused, &raw, key_pending));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    let refused = Refused::new(
                        Refusal::Malformed(format!("body could not be read: {e}")),
                        b"",
                    );
                    return Err(failed(refused, &raw, key_pending));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let too_large = raw.len() + data.len() > limit;
            if key_pending {
                let before = raw.len();
                let take = crate::auth::BODY_KEY_SCAN
                    .saturating_sub(before)
                    .min(data.len());
                let complete = before + take >= crate::auth::BODY_KEY_SCAN;
                if complete || too_large {
                    // The window as it stands with this part; put back before the part is
                    // taken whole (or refused as too large).
                    raw.extend_from_slice(&data[..take]);
                    let found = key_seen(&raw);
                    raw.truncate(before);
                    if found {
                        key_pending = false;
                    } else if complete {
                        return Err(Refusal::Unauthorized.into());
                    }
                }
            }
            if too_large {
                let refused = Refused::new(
                    Refusal::PayloadTooLarge(format!("body over {limit} bytes")),
                    b"",
                );
                return Err(if key_pending {
                    Refusal::Unauthorized.into()
                } else {
                    refused
                });
            }
            if let Err(shed) = self.admission.grow(reservation, data.len()) {
                return Err(Refusal::Overloaded(shed).into());
            }
            raw.extend_from_slice(&data);
        }
        if key_pending && !key_seen(&raw) {
            return Err(Refusal::Unauthorized.into());
        }
        Ok(raw)
    }
}

pub(crate) fn check_content_type(headers: &HeaderMap, raw: &[u8]) -> Result<(), Refused> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || mime == "text/plain" {
        Ok(())
    } else {
        Err(Refused::new(Refusal::UnsupportedMediaType(mime), raw))
    }
}

/// Undoes `Content-Encoding`, never producing more than `limit` bytes: a gzip bomb costs
/// `limit` bytes of memory at most.
/// A body without an encoding is borrowed as it is.
pub(crate) fn decode<'r>(
    headers: &HeaderMap,
    raw: &'r [u8],
    limit: usize,
) -> Result<Cow<'r, [u8]>, Refused> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(Cow::Borrowed(raw)),
        Some("gzip") | Some("x-gzip") => {
            let mut plain = Vec::new();
            // Every member of a multi-member gzip body (concatenated streams are gzip too).
            let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
            match decoder.read_to_end(&mut plain) {
                Ok(_) if plain.len() > limit => Err(Refused::new(
                    Refusal::PayloadTooLarge(format!(
                        "body over {limit} bytes after decompression"
                    )),
                    raw,
                )),
                Ok(_) => Ok(Cow::Owned(plain)),
                Err(e) => Err(Refused::new(
                    Refusal::Malformed(format!("gzip body could not be decoded: {e}")),
                    raw,
                )),
            }
        }
        Some(other) => Err(Refused::new(
            Refusal::UnsupportedEncoding(other.to_owned()),
            raw,
        )),
    }
}
