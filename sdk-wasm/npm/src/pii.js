// eventwire/pii: the fields a schema marks as personal data ("x-pii": true) are sealed in the
// page, before they reach the core, storage or the network, as the Rust tracker seals them
// (docs/pii.md): each value's JSON text, HPKE (RFC 9180) base mode to the backend's public
// key, DHKEM(P-256, HKDF-SHA256) + HKDF-SHA256 + AES-128-GCM on WebCrypto (@hpke/core),
// bound to the event id, the schema and the field's JSON pointer; the result is
// `ew1.<key id>.<enc>.<ciphertext>`, base64url.
//
// scripts/build-npm.sh bundles this file with @hpke/core into dist/pii.js: pages that do not
// import it load none of it.
import { Aes128Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from "@hpke/core";

/** The suite (a CipherSuite of @hpke/core), for checks against RFC 9180's test vectors. */
export const hpke = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });

const utf8 = new TextEncoder();
// `eventwire_pii::INFO`, `SEALED_PREFIX`, and the public key's text prefix.
const INFO = utf8.encode("eventwire pii ew1");
const SEALED = "ew1.";
const PUBLIC = "ewpk1.";
// A collector takes strings of at most this many bytes (`protocol::MAX_STRING_BYTES`).
const MAX_STRING_BYTES = 65536;

/**
 * `options` for `init` or `createTracker`, with sealing: every value `options.piiMarks`
 * marks (the generated `PII_MARKS`) is sealed to `publicKey` (`ewpk1.…`, from `eventwire pii
 * keygen`) before the event is queued. Throws when the key is not one, or without WebCrypto
 * (an insecure context: http other than localhost).
 */
export function withPii(options, publicKey) {
  const point = parseKey(publicKey);
  if (!options || !options.piiMarks) throw new Error("eventwire/pii: no piiMarks (the PII_MARKS generated with the types): nothing would be sealed");
  if (!(globalThis.crypto && crypto.subtle)) {
    throw new Error("eventwire/pii: WebCrypto is not available here (it needs a secure context: https or localhost)");
  }
  // The key as WebCrypto holds it, and its id: the first 8 bytes of the point's SHA-256.
  const key = Promise.all([hpke.kem.deserializePublicKey(point), crypto.subtle.digest("SHA-256", point)])
    .then(([k, h]) => [k, b64(new Uint8Array(h, 0, 8))]);
  key.catch(() => {}); // a point off the curve: each event's sealing fails, counted pii_unsealed
  // The marks are the subpath's: the base tracker refuses marked events only without it.
  const { piiMarks, ...rest } = options;
  return { ...rest, pii: (t) => install(t, piiMarks || {}, key) };
}

// `ewpk1.<base64url of the 65-byte uncompressed SEC1 point>` → the point.
function parseKey(text) {
  const b = String(text || "").trim();
  if (!b.startsWith(PUBLIC)) throw new Error("eventwire/pii: not an eventwire public key (it should start with " + PUBLIC + ")");
  const s = b.slice(PUBLIC.length);
  if (!/^[A-Za-z0-9_-]{87}$/.test(s)) throw new Error("eventwire/pii: the public key is not 65 bytes of base64url");
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=");
  const point = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (point[0] !== 4) throw new Error("eventwire/pii: not an uncompressed P-256 point");
  return point;
}

function b64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The associated data: the event id, the schema URI and the pointer, each as a 4-byte
// big-endian length and its UTF-8 bytes (`eventwire_pii`'s `associated_data`).
function aad(...parts) {
  const bytes = parts.map((p) => utf8.encode(p));
  const out = new Uint8Array(bytes.reduce((n, b) => n + 4 + b.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const b of bytes) {
    view.setUint32(at, b.length);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

// A UUID v7 (RFC 9562) for Unix time `ms`, as the core makes them: lowercase, hyphenated.
function uuid7(ms) {
  const b = crypto.getRandomValues(new Uint8Array(16));
  for (let i = 5; i >= 0; i--, ms = Math.floor(ms / 256)) b[i] = ms % 256;
  b[6] = (b[6] & 15) | 0x70;
  b[8] = (b[8] & 63) | 0x80;
  const h = Array.from(b, (x) => (x < 16 ? "0" : "") + x.toString(16)).join("");
  return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
}

// The marked values present in `node` (the instance at pointer `at`) for the pointer
// segments `segs` (`*`: every item of an array; RFC 6901 escapes), as the Rust tracker finds
// them (`Marks::places`): [pointer, parent, key] each.
function find(node, segs, at, out, parent, key) {
  if (!segs.length) return void (parent !== undefined && out.push([at, parent, key]));
  if (!node || typeof node !== "object") return;
  const [first, ...rest] = segs;
  if (Array.isArray(node)) {
    if (first === "*") node.forEach((v, i) => find(v, rest, at + "/" + i, out, node, i));
    else if (/^(0|[1-9]\d*)$/.test(first) && +first < node.length) find(node[+first], rest, at + "/" + first, out, node, +first);
  } else {
    const name = first.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Object.prototype.hasOwnProperty.call(node, name)) find(node[name], rest, at + "/" + first, out, node, name);
  }
}

class TooLarge extends Error {}

// A string of JSON text that holds a lone UTF-16 surrogate (`JSON.stringify` writes it as an
// escape): not text, and not JSON a Rust opener can read back.
const LONE_SURROGATE = /(^|[^\\])(\\\\)*\\ud[89a-f]/;

// The marked values of `ev` (a copy: `{ schema, data, entities }`), each as [schema, pointer
// into the event, parent, key, JSON text]. Throws when one is not text (a lone surrogate).
function places(marks, ev) {
  const out = [];
  const each = (schema, data, prefix) => {
    const found = [];
    for (const p of marks[schema] || []) find(data, p.split("/").slice(1), "", found);
    for (const [at, parent, k] of found) {
      const json = JSON.stringify(parent[k]);
      if (LONE_SURROGATE.test(json)) throw new Error("eventwire/pii: " + prefix + at + " is not well-formed text (a lone UTF-16 surrogate)");
      out.push([schema, prefix + at, parent, k, json]);
    }
  };
  each(ev.schema, ev.data, "/data");
  (ev.entities || []).forEach((e, i) => e && each(e.schema, e.data, "/entities/" + i + "/data"));
  return out;
}

// Seals, in place, every value of `found` (from `places`) for the event `id`; resolves once
// all are sealed.
function seal(key, kid, found, id) {
  return Promise.all(found.map(([schema, pointer, parent, k, json]) =>
    hpke.seal({ recipientPublicKey: key, info: INFO }, utf8.encode(json), aad(id, schema, pointer)).then(({ enc, ct }) => {
      // An encapsulated P-256 key and at least the AEAD's 16-byte tag, or it is not sealed.
      if (enc.byteLength !== 65 || ct.byteLength < 16) throw new Error("eventwire/pii: HPKE gave no sealed value");
      const sealed = SEALED + kid + "." + b64(new Uint8Array(enc)) + "." + b64(new Uint8Array(ct));
      if (sealed.length > MAX_STRING_BYTES) throw new TooLarge();
      // As a data property, whatever the name (`__proto__` included).
      Object.defineProperty(parent, k, { value: sealed, enumerable: true, writable: true, configurable: true });
    })));
}

// Sealing on tracker `t` (the base package's Tracker, whose internals this relies on: its
// enqueue, check, reread, renew, drain, get, put, store, key, slot, aid, out): its track, flush,
// setUserId, reset, stats, hide, consent and adopt, wrapped. While an event is being sealed,
// what the page does next (events, marked or not, and identity changes) waits behind it, in
// order, so every event keeps the user and session of the moment it was tracked and `flush`
// resolves only once the sealed events are answered for. The plaintext is only in this queue
// (memory) meanwhile.
function install(t, marks, keyed) {
  const track = t.track.bind(t), flush = t.flush.bind(t), stats = t.stats.bind(t), adopt = t.adopt.bind(t);
  const hide = t.hide.bind(t), consent = t.consent.bind(t), setUserId = t.setUserId.bind(t), reset = t.reset.bind(t);
  // Waiting, in order: { ev, at, ok } events (`at`: the time, or the id of a sealed event;
  // ev 0 once dropped, with `why`) and { f, ok } calls.
  let held = [];
  let events = 0, done = 0, hid = 0;
  const waiting = [];
  // Dropped before reaching the core, by reason (`dropped_<reason>` in stats).
  const lost = { opted_out: 0, pii_unsealed: 0, too_large: 0, shut_down: 0 };
  // This tab's events that a page end would lose (waiting while the page is hidden), kept in
  // storage under the tab's id: a page that finds the count of a tab whose lock is free (it
  // is gone) adds it to its own `dropped_shut_down`, once.
  const prefix = t.key + ":pii:", tab = t.slot.slice(t.key.length + 3);
  const save = () => {
    try {
      if (hid) t.store.setItem(prefix + tab, String(hid));
      else t.store.removeItem(prefix + tab);
    } catch (e) { /* no storage: the count dies with the page */ }
  };
  const mark = (h) => "ev" in h && !h.hid && ((h.hid = 1), ++hid);
  const adoptCounts = async () => {
    const store = t.store, locks = navigator.locks;
    if (!store || !locks) return;
    const found = [];
    for (let i = 0; i < store.length; i++) {
      const k = store.key(i);
      if (k && k.startsWith(prefix) && k !== prefix + tab) found.push(k);
    }
    for (const k of found) {
      await locks.request(t.key + ":t:" + k.slice(prefix.length), { ifAvailable: true }, (lock) => {
        if (!lock) return; // its tab is open
        lost.shut_down += +store.getItem(k) || 0;
        store.removeItem(k);
      });
    }
  };
  // After the base's adoption, which takes a gone tab's lock to send its stored events.
  t.adopt = () => adopt().then(adoptCounts).catch(() => {});

  const forget = (h) => {
    if (h.hid) hid--, save();
    if ("ev" in h) events--;
    done++;
  };
  const wake = () => {
    for (let i = waiting.length; i--; ) if (waiting[i].n <= done) waiting.splice(i, 1)[0].r();
  };
  // A deferred call (setUserId, reset) that throws is reported, and what follows goes on.
  const call = (f) => {
    try {
      f();
    } catch (e) {
      console.error("eventwire/pii: a deferred call failed:", e);
    }
  };
  const release = () => {
    // What waits is dropped and counted at an opt-out (another tab's too) before any of it
    // is handed over.
    t.reread();
    let n = 0;
    while (held.length && held[0].ok) {
      const h = held.shift();
      forget(h);
      if (!("ev" in h)) call(h.f);
      else if (!h.ev) lost[h.why]++;
      else {
        n++;
        try {
          t.enqueue(h.ev, h.at);
        } catch (e) {
          // Cannot happen (the copy was checked as enqueue checks it); counted if it does.
          lost.pii_unsealed++;
          console.error("eventwire/pii: an event could not be queued:", e);
        }
      }
    }
    wake();
    // Sealed after the page was hidden: they leave now, as page hide sends.
    if (n && document.visibilityState === "hidden") t.hide();
  };
  const later = (f) => (held.length ? held.push({ f, ok: 1 }) : f());
  let warned;

  t.track = (event) => {
    const marked = event && (marks[event.schema] || (event.entities || []).some((e) => e && marks[e.schema]));
    if (!marked && !held.length) return track(event);
    // The copy is what is queued: it is checked now, as track checks, so a bad call throws
    // at the call.
    const ev = JSON.parse(JSON.stringify({ schema: event.schema, data: event.data, entities: event.entities }));
    t.check(ev.schema);
    for (const e of ev.entities || []) t.check(e && e.schema);
    if (!ev.data || typeof ev.data !== "object" || Array.isArray(ev.data)) throw new Error("eventwire: data is not an object");
    const found = marked ? places(marks, ev) : [];
    t.reread();
    if (t.out) return;
    const now = Date.now(), h = { ev, at: String(now), ok: marked ? 0 : 1 };
    held.push(h);
    events++;
    // Tracked while the page is hidden: it may end before this is handed over.
    if (document.visibilityState === "hidden" && mark(h)) save();
    if (!marked) return;
    // The core takes the id in place of the time (a UUID v7 carries its time).
    const id = (h.at = uuid7(now));
    keyed
      .then(([key, kid]) => seal(key, kid, found, id))
      .then(
        () => (h.ok = 1),
        (e) => {
          h.ok = 1;
          h.ev = 0;
          h.why = e instanceof TooLarge ? "too_large" : "pii_unsealed";
          if (!warned && h.why !== "too_large") (warned = 1), console.error("eventwire/pii: sealing failed; events are dropped (pii_unsealed):", e);
        },
      )
      .then(release);
  };

  t.flush = (timeoutMs = 10000) => {
    if (!held.length) return flush(timeoutMs);
    const start = Date.now(), n = done + held.length;
    return new Promise((r) => {
      waiting.push({ n, r });
      setTimeout(r, Math.min(timeoutMs, 2147483647));
    }).then(() => (done >= n ? flush(Math.max(0, timeoutMs - (Date.now() - start))) : { ok: false, pending: t.stats().pending }));
  };

  t.setUserId = (id) => later(() => setUserId(id));
  // The new anonymous id at once (`anonymousId()`), the sign-out after what waits.
  t.reset = () => {
    if (!held.length) return reset();
    const aid = (t.aid = crypto.randomUUID());
    t.put("aid", aid);
    later(() => (t.drain(true), t.renew(aid)));
  };

  t.stats = () => {
    const s = stats();
    let n = events;
    for (const k in lost) (s["dropped_" + k] += lost[k]), (n += lost[k]);
    s.tracked += n;
    s.pending += events;
    s.sealing = events;
    return s;
  };

  // Page hide: what waits cannot be stored (a marked value is in clear until sealed) nor
  // sent yet; it leaves as soon as it can if the page lives on, and is counted by a later
  // page if it does not.
  t.hide = () => {
    hide();
    let n = 0;
    for (const h of held) if (mark(h)) n++;
    if (n) save();
  };

  // Opt-out: what waits is dropped, counted as opted_out (identity changes still apply).
  t.consent = (out) => {
    if (out && held.length) {
      const was = held;
      held = [];
      for (const h of was) {
        forget(h);
        if (!("ev" in h)) call(h.f);
        else lost.opted_out++;
      }
      wake();
    }
    consent(out);
  };
}
