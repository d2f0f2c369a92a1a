// eventwire for browsers. The tracker's decisions (ids, envelopes, sessions, batching, retry
// policy, accounting) are the Rust core compiled to wasm (dist/core_bg.wasm); this file does
// what only a browser can: JSON.stringify, fetch and keepalive on page hide, storage, tab locks.
import { Core, imports, finish } from "./dist/core.js";

const VERSION = "0.1.0";
// The fetch standard refuses a keepalive request when its body's bytes plus those of the
// page's keepalive requests still in flight pass 64 KiB.
const KEEPALIVE_QUOTA = 65536;
const PERSIST_DELAY_MS = 250;
// A slot that holds calls tracked before the core was ready (not envelopes yet) starts so.
const RAW = "\u0001";
// Iglu schema URIs: `eventwire::protocol::IGLU_URI_PATTERN` (a Rust test keeps them equal).
const IGLU = /^iglu:[\w-]+(\.[\w-]+)*\/[\w-]+\/[\w-]+\/[1-9]\d{0,8}-(0|[1-9]\d{0,8})-(0|[1-9]\d{0,8})$/;
// The names of the core's `stats()` values, in its order: counters, then the reasons of
// `dropped_<reason>` (a Rust test keeps them equal to the core's).
const COUNTERS = "tracked sent duplicates rejected filtered pending requests retries throttled bytes_sent recovered | queue_full too_large unauthorized unsupported_encoding http_status retry_expired shut_down spool_full spool_error opted_out not_a_collector pii_unsealed";

let loading;
// Bytes of keepalive requests in flight, for the whole page (the quota is the page's).
let keepalive = 0;

// The wasm core from `src` (a URL, a Response, bytes or a module): its instance.
async function instantiate(src) {
  if (src instanceof WebAssembly.Module) return WebAssembly.instantiate(src, imports());
  src = await (typeof src === "string" || src instanceof URL ? fetch(src) : src);
  if (src instanceof Response) {
    if (!src.ok) throw new Error("HTTP " + src.status + " for " + src.url);
    src = await src.arrayBuffer();
  }
  return (await WebAssembly.instantiate(src, imports())).instance;
}

// The core, once for the page: WebAssembly; or, where a Content-Security-Policy refuses to
// compile WebAssembly, the same core compiled to JavaScript (dist/core_asm.js, fetched only
// then). A failed load is forgotten, so the next try loads again.
function loadCore(o) {
  return (loading ||= instantiate(o.wasm || new URL("./dist/core_bg.wasm", import.meta.url))
    .then(finish, async (e) => {
      if (!(e instanceof WebAssembly.CompileError)) throw e;
      // A URL known only at run time: bundlers must leave this import to the browser
      // (webpack would turn it into a lookup in its own modules, which fails).
      const asm = await import(/* webpackIgnore: true */ /* @vite-ignore */ o.wasm2js || new URL("./dist/core_asm.js", import.meta.url).href);
      finish({ exports: asm.default(imports()) });
    })
    .catch((e) => {
      loading = 0;
      throw new Error("eventwire: core not loaded: " + e.message, { cause: e });
    }));
}

/** Loads the core and starts a tracker; rejects when the core cannot be loaded (call again to retry). */
export async function init(options) {
  const t = new Tracker(options, false);
  try {
    await t.ready;
  } catch (e) {
    t.close();
    throw e;
  }
  return t;
}

/** A tracker at once: what it tracks before the core is loaded is kept and sent after; a failed load is retried. */
export function createTracker(options) {
  return new Tracker(options, true);
}

function storage() {
  try {
    return localStorage;
  } catch (e) {
    return null; // disabled, sandboxed: memory only (a store that refuses writes is one too)
  }
}

function uuid() {
  return crypto.randomUUID ? crypto.randomUUID()
    : "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
      (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16));
}

// FNV-1a: the storage key of an endpoint + write key.
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(36);
}

class Tracker {
  constructor(o, retry) {
    if (!o || !o.endpoint) throw new Error("eventwire: no endpoint");
    // A test id the collector takes (else it would refuse every event): 1 to 256 UTF-16
    // code units (the schema counts characters: stricter only past the BMP), well-formed.
    const t = o.testId;
    if (t != null && !(typeof t == "string" && t && t.length < 257 && t.isWellFormed())) throw new Error("eventwire: bad testId");
    this.o = o;
    const base = o.endpoint.replace(/\/+$/, "");
    this.url = base + "/v1/batch";
    this.key = "ew1:" + hash(base + "\n" + (o.writeKey || ""));
    this.store = o.storage === false ? null : storage();
    this.aid = this.get("aid") || uuid();
    this.put("aid", this.aid);
    this.persistMax = o.maxStoredBytes || 2000000;
    this.buf = [];
    this.valid = new Set();
    this.waiters = [];
    this.timer = this.saving = this.posts = this.early = this.gone = this.turn = 0;
    this.out = this.get("out") === "1";
    const stop = (this.stop = new AbortController()), on = { signal: stop.signal };
    // This tab's slot in storage, held with a Web Lock for the tab's lifetime: a slot whose
    // lock is free belongs to a closed tab, and exactly one other tab adopts its events.
    this.slot = this.key + ":t:" + uuid();
    const locks = navigator.locks;
    this.locked = locks
      ? new Promise((held) => locks.request(this.slot, () => stop.signal.aborted || (held(), new Promise((r) => (this.unlock = r)))))
      : Promise.resolve();
    const hide = () => this.hide();
    addEventListener("pagehide", hide, on);
    document.addEventListener("visibilitychange", () => document.visibilityState === "hidden" && hide(), on);
    addEventListener("online", () => (this.adopt(), this.send(1)), on);
    // Consent set in another tab of the site reaches this one at once.
    addEventListener("storage", (e) => e.key === this.key + ":out" && this.consent(e.newValue === "1"), on);
    // `withPii` (eventwire/pii): sealing, installed on this tracker.
    if (o.pii) o.pii(this);
    this.ready = this.boot(retry);
  }

  // Loads the core (again and again, backing off, when `retry`), then starts delivering.
  async boot(retry) {
    for (let wait = 1000; ; wait = Math.min(2 * wait, 30000)) {
      try {
        await loadCore(this.o);
        break;
      } catch (e) {
        if (!retry || this.stop.signal.aborted) throw e;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    const o = this.o, session = (this.get("s") || "").split("\0");
    const seed = crypto.getRandomValues(new Uint32Array(2));
    this.core = new Core(
      // The context's fixed members (a test id left out is dropped by stringify).
      [JSON.stringify({ labels: o.labels || {}, library: { name: "eventwire-js", version: VERSION }, test_id: o.testId }).slice(1, -1),
        o.writeKey || "", this.aid, session[0] || "", seed[0] * 4294967296 + seed[1]].join("\0"),
      +session[1] || 0,
      // Left out: the core's defaults.
      o.sessionTimeoutMs,
      o.maxBatchEvents,
      o.maxBatchBytes,
      o.maxBatchDelayMs,
      o.maxQueueEvents,
      o.maxQueueBytes,
      o.maxInFlight,
    );
    // A user set before the core was ready applies from the start.
    if (this.user !== undefined) this.core.setUser(this.user);
    this.adopter = setInterval(() => this.adopt(), 30000);
    this.locked.then(() => this.adopt());
    this.drain();
    this.settled();
  }

  close() {
    this.stop.abort();
    clearInterval(this.adopter);
    this.unlock && this.unlock();
  }

  get(name) {
    try { return this.store && this.store.getItem(this.key + ":" + name); } catch (e) { return null; }
  }

  put(name, value) {
    try { this.store && this.store.setItem(this.key + ":" + name, value); } catch (e) { /* full */ }
  }

  /** Tracks a self-describing event: `{ schema, data, entities? }`. Never waits. */
  track(event) {
    this.enqueue(event);
  }

  // `at` (eventwire/pii only): the time it was tracked, or the id its sealed values are bound
  // to (a UUID v7 of that time).
  enqueue(event, at) {
    if (!this.turn) {
      // Once a task: the events cross into wasm together, and consent is read again.
      this.turn = 1;
      queueMicrotask(() => ((this.turn = 0), this.drain()));
      this.reread();
    }
    if (this.out) return;
    this.check(event.schema);
    const data = JSON.stringify(event.data);
    if (!data || data[0] !== "{") throw new Error("eventwire: data is not an object");
    let entities = "";
    if (event.entities && event.entities.length) {
      for (const e of event.entities) this.check(e.schema);
      entities = JSON.stringify(event.entities);
    }
    // Before the core is ready, calls wait here (bounded like the queue, the rest counted).
    if (!this.core && this.buf.length >= 4 * (this.o.maxQueueEvents || 1e5)) return void this.early++;
    this.buf.push(event.schema, data, entities, at || Date.now());
    if (!this.core) this.dirty();
  }

  // Consent as storage has it (another tab may have changed it); without a setting there,
  // the tab's own choice stands.
  reread() {
    const out = this.get("out");
    if (out && (out === "1") !== this.out) this.consent(out === "1");
  }

  check(schema) {
    // Personal data (the generated PII_MARKS) is sealed by withPii, or sent in clear on request.
    const m = this.o.piiMarks;
    if (m && m[schema] && !this.o.sendPiiInClear) throw new Error("eventwire: x-pii fields in " + schema + " (withPii seals them)");
    if (this.valid.has(schema)) return;
    if (typeof schema !== "string" || !IGLU.test(schema)) {
      throw new Error("eventwire: not an Iglu URI (iglu:vendor/name/format/M-R-A): " + schema);
    }
    this.valid.add(schema);
  }

  // Hands queued calls to the core: 2,000 events per task at most, so that a burst never
  // holds the main thread for long (`all`: everything now, for flush and page hide).
  drain(all) {
    const buf = this.buf;
    if (!buf.length || !this.core || this.out) return;
    const n = all ? buf.length : Math.min(buf.length, 8000);
    this.buf = buf.splice(n);
    this.core.add(buf.join("\0"), performance.now());
    if (this.buf.length) setTimeout(() => this.drain(), 0);
    this.dirty();
    this.kick();
  }

  // Sets the timer for the next request the core has due (flushing: without the batch delay).
  kick() {
    if (!this.core) return;
    const due = this.core.due(performance.now(), this.waiters.length ? 1 : 0);
    clearTimeout(this.timer);
    this.timer = due >= 0 ? setTimeout(() => this.send(), Math.min(Math.ceil(due), 2147483647)) : 0;
  }

  // Sends what is due, up to the core's window of requests in flight (`online`: what is
  // queued, ending a backoff in progress). Offline, nothing is tried: the batches wait, unaged.
  send(online) {
    this.timer = 0;
    if (this.out || !this.core || navigator.onLine === false) return;
    let mode = online ? 3 : this.waiters.length ? 1 : 0;
    for (let body; (body = this.core.take(performance.now(), Date.now(), mode, 0)).length; mode &= 1) {
      this.post(this.core.batch(), body, body.length + keepalive <= KEEPALIVE_QUOTA).then(() => (this.settled(), this.kick()));
    }
    // A timer may fire a little early: then nothing is due yet, and it is set again.
    this.settled();
    this.kick();
  }

  // Sends one body as text/plain (a "simple" request: no CORS preflight; the write key is
  // in the body), reads the answer and settles it in the core.
  // Redirects are not followed: only the collector's own answer is delivery.
  async post(id, body, alive) {
    const bytes = body.length;
    let status = 0, retryAfter = "", accepted = -1, rejected = "", duplicates = 0, text;
    this.posts++;
    if (alive) keepalive += bytes;
    try {
      const r = await fetch(this.url, {
        method: "POST", body, keepalive: alive, credentials: "omit", redirect: "manual",
        headers: { "content-type": "text/plain" },
        signal: AbortSignal.timeout(this.o.requestTimeoutMs || 10000),
      });
      text = await r.text();
      // The collector's answer is small: a larger body is not one.
      if (text.length > 1 << 20) text = "";
      status = r.type === "opaqueredirect" ? 300 : r.status;
      retryAfter = r.headers.get("retry-after") || "";
      // An HTTP-date becomes seconds here: the browser parses dates, the core need not.
      if (/\D/.test(retryAfter.trim())) {
        const at = Date.parse(retryAfter);
        retryAfter = at ? String(Math.max(0, Math.ceil((at - Date.now()) / 1000))) : "";
      }
      // Numbers only, as the Rust tracker reads them (anything else: not a batch answer).
      const a = JSON.parse(text), num = (v) => (typeof v == "number" ? v : -1);
      rejected = (a.rejected || []).map((x) => num(x.index)).join(",");
      duplicates = a.duplicates === undefined ? 0 : num(a.duplicates);
      accepted = num(a.accepted);
    } catch (e) {
      // No answer (offline, refused, aborted; status 0): retried. A body that is not a
      // batch answer leaves `accepted` at -1: not a collector's.
    }
    if (alive) keepalive -= bytes;
    this.posts--;
    // Opted out meanwhile: the core drops what would be sent again (opted in since or not).
    this.core.settle(id, status, retryAfter, accepted, rejected, duplicates, performance.now(), Date.now(), Math.random());
    this.dirty();
  }

  settled() {
    if (this.waiters.length && this.core.due(performance.now(), 1) < 0 && !this.posts && !this.buf.length) {
      for (const w of this.waiters.splice(0)) w(1);
    }
  }

  /** Sends everything queued now; resolves `{ ok, pending }`: ok once all is answered for, else at `timeoutMs` with what is still pending. */
  flush(timeoutMs = 10000) {
    this.drain(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        done();
      }, Math.min(timeoutMs, 2147483647));
      const done = (ok) => (clearTimeout(t), resolve({ ok: !!ok, pending: this.stats().pending }));
      this.waiters.push(done);
      if (this.core) this.settled(), this.kick();
    });
  }

  // Page hide: what is queued leaves now with keepalive requests (they outlive the page),
  // within what the quota leaves; everything not yet answered for stays in storage for the
  // next page (the collector deduplicates what did arrive).
  hide() {
    this.drain(true);
    let budget = KEEPALIVE_QUOTA - keepalive;
    while (this.core && budget > 1000 && navigator.onLine !== false && !this.out) {
      const body = this.core.take(performance.now(), Date.now(), 2, budget);
      if (!body.length) break;
      budget -= body.length;
      this.post(this.core.batch(), body, true).then(() => (this.settled(), this.kick()));
    }
    this.persist();
  }

  dirty() {
    if (!this.saving) this.saving = setTimeout(() => this.persist(), PERSIST_DELAY_MS);
  }

  // One write of this tab's pending events (never one per event), bounded in size; storage
  // that is full or missing leaves them in memory only.
  persist() {
    clearTimeout(this.saving);
    this.saving = 0;
    if (!this.store) return;
    let blob = this.out ? "" : this.core ? this.core.pending() : this.raw(this.buf.length / 4);
    // Over the cap (in UTF-16 units, as storage quotas count): the oldest that fit are kept,
    // the rest only in memory.
    if (blob.length > this.persistMax) blob = blob[0] === RAW ? this.fit() : blob.slice(0, Math.max(0, blob.lastIndexOf("\n", this.persistMax)));
    try {
      if (blob) this.store.setItem(this.slot, blob);
      else this.store.removeItem(this.slot);
    } catch (e) { /* quota: the events stay in memory */ }
    if (this.core) this.put("s", this.core.session());
  }

  // The first `n` calls tracked before the core was ready, for storage.
  raw(n) {
    return n ? RAW + JSON.stringify(this.buf.slice(0, 4 * n)) : "";
  }

  // As many of them as fit the cap (halving until they do).
  fit() {
    let n = this.buf.length / 4, blob;
    while ((blob = this.raw(n)).length > this.persistMax) n >>= 1;
    return blob;
  }

  // Takes over the events of tabs that are gone (their lock is free).
  async adopt() {
    try {
      await this.adoptSlots();
    } catch (e) { /* storage went away: what is there stays for another try */ }
  }

  async adoptSlots() {
    const store = this.store, locks = navigator.locks;
    if (!store || !locks || this.out) return;
    const prefix = this.key + ":t:", slots = [];
    for (let i = 0; i < store.length; i++) {
      const k = store.key(i);
      if (k && k.startsWith(prefix) && k !== this.slot) slots.push(k);
    }
    for (const k of slots) {
      await locks.request(k, { ifAvailable: true }, (lock) => {
        if (!lock) return; // its tab is open
        const kept = store.getItem(k);
        // Envelopes wait for this tab's core; calls tracked before a core can always go.
        if (!kept || (!this.core && kept[0] !== RAW)) return;
        store.removeItem(k);
        // Calls a page tracked before its core was ready: tracked again here.
        if (kept[0] === RAW) this.buf = this.buf.concat(JSON.parse(kept.slice(1)));
        else this.core.restore(kept, performance.now());
        this.drain(true);
        this.persist();
        this.kick();
      });
    }
  }

  /** The counters: tracked, sent, duplicates, rejected, dropped_<reason>, pending, … */
  stats() {
    const s = {}, v = this.core ? this.core.stats().split(",") : [];
    let prefix = "", i = 0;
    for (const k of COUNTERS.split(" ")) k === "|" ? (prefix = "dropped_") : (s[prefix + k] = +v[i++] || 0);
    if (!this.core) s.tracked = s.pending = this.buf.length / 4;
    // Dropped before reaching the core: over the bound before it loaded, or at an opt-out.
    s.tracked += this.early + this.gone;
    s.dropped_queue_full += this.early;
    s.dropped_opted_out += this.gone;
    return s;
  }

  /** Sets (or clears, with null) the signed-in user for the next events. */
  setUserId(id) {
    this.drain(true);
    this.user = "" + (id ?? "");
    this.core && this.core.setUser(this.user);
  }

  /** Sign-out: a new anonymous id, no user, a new session. */
  reset() {
    this.drain(true);
    this.renew(uuid());
  }

  // Sign-out with the anonymous id `aid`: kept in storage, no user, a new session.
  renew(aid) {
    this.aid = aid;
    this.user = "";
    this.put("aid", aid);
    this.core && this.core.reset(aid);
  }

  /** The anonymous id attached to events (kept in storage). */
  anonymousId() {
    return this.aid;
  }

  // Consent, from this tab or another: out drops what is queued (counted) and stops
  // collection and sending; in collects again.
  consent(out) {
    this.out = out;
    if (out) {
      this.gone += this.buf.length / 4;
      this.buf = [];
      this.core && this.core.clear();
      this.persist();
      // Closed tabs' events too: nothing of this site is kept.
      try {
        for (let i = this.store ? this.store.length : 0; i--; ) {
          const k = this.store.key(i);
          if (k && k.startsWith(this.key + ":t:")) this.store.removeItem(k);
        }
      } catch (e) { /* storage gone */ }
    }
  }

  /** Stops collection in every tab of the site and clears the queue and this tab's storage; remembered. */
  optOut() {
    this.put("out", "1");
    this.consent(true);
  }

  /** Collects again after `optOut()`, in every tab of the site. */
  optIn() {
    this.put("out", "0");
    this.consent(false);
  }

  get optedOut() {
    return this.out;
  }
}
