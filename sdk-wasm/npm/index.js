// eventwire for browsers. The tracker's decisions (ids, envelopes, sessions, batching, retry
// policy, accounting) are the Rust core compiled to wasm (dist/core_bg.wasm); this file does
// what only a browser can: JSON.stringify, fetch and keepalive on page hide, storage, tab locks.
import load, { Core } from "./dist/core.js";

const VERSION = "0.1.0";
// Chromium allows 64 KiB of keepalive request bodies in flight per page.
const HIDE_BUDGET = 60000;
const PERSIST_DELAY_MS = 250;

let ready;

/** Loads the wasm core (once) and starts a tracker. */
export async function init(options) {
  const o = options || {};
  if (!o.endpoint) throw new Error("eventwire: `endpoint` is required");
  await (ready || (ready = load(o.wasm && { module_or_path: o.wasm })));
  return new Tracker(o);
}

function storage() {
  try {
    const s = localStorage, k = "ew1:probe";
    s.setItem(k, k);
    s.removeItem(k);
    return s;
  } catch (e) {
    return null; // private mode, disabled, sandboxed: memory only
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
  constructor(o) {
    const base = o.endpoint.replace(/\/+$/, "");
    this.url = base + "/v1/batch";
    this.key = "ew1:" + hash(base + "\n" + (o.writeKey || ""));
    this.store = o.storage === false ? null : storage();
    this.aid = this.get("aid") || uuid();
    this.put("aid", this.aid);
    const session = (this.get("s") || "").split("\0");
    const seed = crypto.getRandomValues(new Uint32Array(2));
    this.core = new Core(
      [JSON.stringify(o.labels || {}), JSON.stringify({ name: "eventwire-js", version: VERSION }),
        o.writeKey || "", this.aid, session[0] || "", String(seed[0] * 4294967296 + seed[1])].join("\0"),
      +session[1] || 0,
      o.sessionTimeoutMs || 1800000,
      o.maxBatchEvents || 500,
      o.maxBatchBytes || 1000000,
      o.maxBatchDelayMs || 1000,
      o.maxQueueEvents || 100000,
      o.maxQueueBytes || 50000000,
    );
    this.persistMax = o.maxStoredBytes || 2000000;
    this.buf = [];
    this.valid = new Set();
    this.waiters = [];
    this.busy = this.timer = this.saving = 0;
    this.out = this.get("out") === "1";
    // This tab's slot in storage, held with a Web Lock for the tab's lifetime: a slot whose
    // lock is free belongs to a closed tab, and exactly one other tab adopts its events.
    this.slot = this.key + ":t:" + uuid();
    const locks = navigator.locks;
    this.locked = locks
      ? new Promise((held) => locks.request(this.slot, () => (held(), new Promise(() => {}))))
      : Promise.resolve();
    this.locked.then(() => this.adopt());
    this.adopter = setInterval(() => this.adopt(), 30000);
    const hide = () => this.hide();
    addEventListener("pagehide", hide);
    document.addEventListener("visibilitychange", () => document.visibilityState === "hidden" && hide());
    addEventListener("online", () => (this.adopt(), this.kick(0)));
  }

  get(name) {
    try { return this.store && this.store.getItem(this.key + ":" + name); } catch (e) { return null; }
  }

  put(name, value) {
    try { this.store && this.store.setItem(this.key + ":" + name, value); } catch (e) { /* full */ }
  }

  /** Tracks a self-describing event: `{ schema, data, entities? }`. Never waits. */
  track(event) {
    if (this.out) return;
    this.check(event.schema);
    const data = JSON.stringify(event.data);
    if (!data || data[0] !== "{") throw new Error("eventwire: `data` must be an object");
    let entities = "";
    if (event.entities && event.entities.length) {
      for (const e of event.entities) this.check(e.schema);
      entities = JSON.stringify(event.entities);
    }
    // Events cross into wasm in groups, once per task, not one call each.
    if (this.buf.push(event.schema, data, entities, Date.now()) === 4) queueMicrotask(() => this.drain());
  }

  check(schema) {
    if (this.valid.has(schema)) return;
    if (typeof schema !== "string" || !this.core.check(schema)) {
      throw new Error("eventwire: " + schema + " is not an Iglu URI: iglu:vendor/name/format/M-R-A");
    }
    this.valid.add(schema);
  }

  // Hands queued calls to the core: 2,000 events per task at most, so that a burst never
  // holds the main thread for long (`all`: everything now, for flush and page hide).
  drain(all) {
    const buf = this.buf;
    if (!buf.length) return;
    const n = all ? buf.length : Math.min(buf.length, 8000);
    this.buf = buf.splice(n);
    this.core.add(buf.join("\0"), performance.now());
    if (this.buf.length) setTimeout(() => this.drain(), 0);
    this.dirty();
    this.kick();
  }

  kick(wait) {
    if (this.busy) return;
    const due = wait >= 0 ? wait : this.core.due(performance.now());
    clearTimeout(this.timer);
    this.timer = due >= 0 ? setTimeout(() => this.send(), Math.ceil(due)) : 0;
  }

  async send() {
    this.timer = 0;
    if (this.busy) return;
    const flushing = this.waiters.length > 0;
    const body = this.core.take(performance.now(), Date.now(), flushing, 0, false);
    // A timer may fire a little early: then nothing is due yet, and it is set again.
    if (!body) return this.settled(), this.kick();
    const id = this.core.batch();
    this.busy = 1;
    const wait = await this.post(id, body, body.length < HIDE_BUDGET);
    this.busy = 0;
    this.settled();
    this.kick(wait >= 0 ? wait : flushing && this.waiters.length ? 0 : -1);
  }

  // Sends one body as text/plain (a "simple" request: no CORS preflight; the write key is
  // in the body), reads the answer and settles it in the core. Returns the core's verdict.
  async post(id, body, keepalive) {
    let status = 0, retryAfter = "", rejected = "", duplicates = 0;
    try {
      const r = await fetch(this.url, {
        method: "POST", body, keepalive, credentials: "omit",
        headers: { "content-type": "text/plain;charset=UTF-8" },
      });
      status = r.status;
      retryAfter = r.headers.get("retry-after") || "";
      // An HTTP-date becomes seconds here: the browser parses dates, the core need not.
      if (/\D/.test(retryAfter.trim())) {
        const at = Date.parse(retryAfter);
        retryAfter = at ? String(Math.max(0, Math.ceil((at - Date.now()) / 1000))) : "";
      }
      if (status === 200) {
        const a = await r.json();
        rejected = (a.rejected || []).map((x) => x.index).join(",");
        duplicates = a.duplicates || 0;
      }
    } catch (e) {
      status = status === 200 ? 200 : 0; // offline, refused, aborted: retried
    }
    const wait = this.core.settle(id, status, retryAfter, rejected, duplicates, performance.now(), Date.now(), Math.random());
    this.dirty();
    return wait;
  }

  settled() {
    if (this.waiters.length && this.core.due(performance.now()) < 0 && !this.busy && !this.buf.length) {
      for (const w of this.waiters.splice(0)) w(true);
    }
  }

  /** Sends everything queued now; resolves true when all is answered for, false at `timeoutMs`. */
  flush(timeoutMs = 10000) {
    this.drain(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = (ok) => (clearTimeout(t), resolve(ok));
      this.waiters.push(done);
      this.settled();
      this.kick(0);
    });
  }

  // Page hide: what is queued leaves now with keepalive requests (they outlive the page),
  // within the keepalive quota; the rest stays in storage for the next page.
  hide() {
    this.drain(true);
    let budget = HIDE_BUDGET;
    while (budget > 1000 && navigator.onLine !== false && !this.out) {
      const body = this.core.take(performance.now(), Date.now(), true, budget, true);
      if (!body) break;
      budget -= body.length;
      this.post(this.core.batch(), body, true).then((wait) => this.kick(wait));
    }
    // Until the collector has answered this page once, a page-hide request may be going
    // nowhere: keep its events too (the collector deduplicates if they did arrive).
    this.persist(!this.core.healthy());
  }

  dirty() {
    if (!this.saving) this.saving = setTimeout(() => this.persist(true), PERSIST_DELAY_MS);
  }

  // One write of this tab's pending events (never one per event), bounded in size; storage
  // that is full or missing leaves them in memory only.
  persist(keepHidden) {
    clearTimeout(this.saving);
    this.saving = 0;
    if (!this.store) return;
    let blob = this.out ? "" : this.core.pending(keepHidden);
    if (blob.length > this.persistMax) blob = blob.slice(0, Math.max(0, blob.lastIndexOf("\n", this.persistMax)));
    try {
      if (blob) this.store.setItem(this.slot, blob);
      else this.store.removeItem(this.slot);
    } catch (e) { /* quota: the events stay in memory */ }
    this.put("s", this.core.session());
  }

  // Takes over the events of tabs that are gone (their lock is free).
  async adopt() {
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
        store.removeItem(k);
        if (kept && this.core.restore(kept, performance.now())) {
          this.persist(true);
          this.kick();
        }
      });
    }
  }

  /** The counters: tracked, sent, duplicates, rejected, dropped_<reason>, pending, … */
  stats() {
    return JSON.parse(this.core.stats());
  }

  /** Sets (or clears, with null) the signed-in user for the next events. */
  setUserId(id) {
    this.drain(true);
    this.core.setUser(id || "");
  }

  /** Sign-out: a new anonymous id, no user, a new session. */
  reset() {
    this.drain(true);
    this.aid = uuid();
    this.put("aid", this.aid);
    this.core.reset(this.aid);
  }

  /** The anonymous id attached to events (kept in storage). */
  anonymousId() {
    return this.aid;
  }

  /** Stops collection and clears the queue and this tab's storage; remembered. */
  optOut() {
    this.out = true;
    this.buf = [];
    this.core.clear();
    this.put("out", "1");
    this.persist(false);
  }

  /** Collects again after `optOut()`. */
  optIn() {
    this.out = false;
    this.put("out", "0");
  }

  get optedOut() {
    return this.out;
  }
}
