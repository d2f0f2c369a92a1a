// The npm package `eventwire` in Debian's Chromium against the real collector (loopback,
// CORS on). Run by scripts/test.sh after scripts/build-npm.sh:
//   EVENTWIRE_BIN=target/debug/eventwire node tests/browser/run.mjs
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Collector, HERE, ROOT, browser, pageServer, sleep, until } from "./lib.mjs";
import { check, suite } from "../harness.mjs";

const bin = process.env.EVENTWIRE_BIN || join(ROOT, "target/debug/eventwire");
const build = mkdtempSync(join(tmpdir(), "eventwire-build-"));
const pages = await pageServer(build);
const collector = new Collector(bin, pages.url);
await collector.start();
const chrome = await browser();
const { test, finish } = suite("browser");

/** Queries of a run in the good sink → times seen; and the event ids seen. */
function arrived(run) {
  const counts = new Map(), ids = new Set();
  for (const e of collector.good()) {
    const q = e.data && e.data.query;
    if (typeof q === "string" && q.startsWith(run + "-")) {
      counts.set(q, (counts.get(q) || 0) + 1);
      ids.add(e.event_id);
    }
  }
  return { counts, ids };
}

function exactlyOnce(run, n) {
  const { counts, ids } = arrived(run);
  for (let i = 0; i < n; i++) check(counts.get(`${run}-${i}`) === 1, `${run}-${i} arrived ${counts.get(`${run}-${i}`) || 0} times`);
  check(counts.size === n && ids.size === n, `${counts.size} events, ${ids.size} ids for ${n}`);
}

async function open(context, delay = 200, extra = "", file = "track.html") {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log("     page error:", e.message));
  await page.goto(`${pages.url}/${file}?endpoint=${encodeURIComponent(collector.url)}&delay=${delay}${extra}`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

/** Front-end errors of a run in the good sink → times seen (by `message`). */
function arrivedErrors(run) {
  const counts = new Map();
  for (const e of collector.good()) {
    const m = e.data && e.data.message;
    if (typeof m === "string" && m.startsWith(run + "-")) counts.set(m, (counts.get(m) || 0) + 1);
  }
  return counts;
}

await test("a page tracks events and the collector gets each event id once", async () => {
  const context = await chrome.newContext();
  const page = await open(context);
  const flushed = await page.evaluate(() => (trackMany("deliver", 0, 120), tracker.flush(10000)));
  check(flushed.ok === true && flushed.pending === 0, `flush did not complete: ${JSON.stringify(flushed)}`);
  exactlyOnce("deliver", 120);
  const stats = await page.evaluate(() => tracker.stats());
  check(stats.tracked === 120 && stats.sent === 120 && stats.pending === 0, JSON.stringify(stats));
  const e = collector.good().find((x) => x.data.query === "deliver-0");
  check(e.context.labels.service === "browser-tests" && e.context.library.name === "eventwire-js", JSON.stringify(e.context));
  check(e.context.anonymous_id && e.context.session_id, "identity missing");
  check(collector.bad() === 0, "dead letters");
  // The same anonymous id on the next page of the site.
  const next = await open(context);
  check(await next.evaluate(() => tracker.anonymousId()) === e.context.anonymous_id, "anonymous id not kept");
  await context.close();
});

await test("events tracked just before navigating away arrive (page hide, keepalive)", async () => {
  const context = await chrome.newContext();
  const page = await open(context, 60000); // nothing would leave before the page does
  await page.evaluate(() => trackMany("unload", 0, 40));
  await page.goto("about:blank");
  await until("the unload events", () => arrived("unload").counts.size === 40, 10000);
  exactlyOnce("unload", 40);
  await context.close();
});

await test("events tracked while the collector is down survive a reload and arrive once it is back", async () => {
  const context = await chrome.newContext();
  await collector.stop();
  const page = await open(context, 100);
  await page.evaluate(() => trackMany("reload", 0, 60));
  await sleep(1500); // a failed attempt, and the events stored
  await page.reload();
  await page.waitForFunction(() => window.ready === true);
  await collector.start();
  await until("the events kept across the reload", () => arrived("reload").counts.size === 60, 40000);
  await sleep(500);
  exactlyOnce("reload", 60);
  await context.close();
});

await test("two tabs with the same key: every event arrives, no tab sends another's", async () => {
  const context = await chrome.newContext();
  const dupBefore = await collector.metric("eventwire_events_duplicate_total");
  await collector.stop();
  const a = await open(context, 100), b = await open(context, 100);
  await Promise.all([a.evaluate(() => trackMany("tabs-a", 0, 150)), b.evaluate(() => trackMany("tabs-b", 0, 150))]);
  await sleep(1200); // both stored, both failing
  await b.reload(); // B's new page adopts B's old events, not A's (A's lock is held)
  await b.waitForFunction(() => window.ready === true);
  await collector.start();
  await until("both tabs' events", () => arrived("tabs-a").counts.size === 150 && arrived("tabs-b").counts.size === 150, 40000);
  await sleep(1000);
  exactlyOnce("tabs-a", 150);
  exactlyOnce("tabs-b", 150);
  const dup = (await collector.metric("eventwire_events_duplicate_total")) - dupBefore;
  check(dup === 0, `${dup} events were sent twice`);
  await context.close();
});

await test("offline, then online: delivery resumes", async () => {
  const context = await chrome.newContext();
  const page = await open(context, 100);
  await context.setOffline(true);
  await page.evaluate(() => trackMany("offline", 0, 50));
  await sleep(1500);
  const during = await page.evaluate(() => tracker.stats());
  // Offline as far as the browser knows: nothing is tried (and nothing ages).
  check(during.sent === 0 && during.pending === 50 && during.requests === 0, JSON.stringify(during));
  await context.setOffline(false);
  await until("the events tracked offline", () => arrived("offline").counts.size === 50, 20000);
  exactlyOnce("offline", 50);
  await context.close();
});

await test("storage unavailable (private mode) or full: events are still delivered", async () => {
  for (const [run, script] of [
    ["nostorage", () => Object.defineProperty(window, "localStorage", { get() { throw new DOMException("denied", "SecurityError"); } })],
    ["fullstorage", () => { Storage.prototype.setItem = () => { throw new DOMException("full", "QuotaExceededError"); }; }],
  ]) {
    const context = await chrome.newContext();
    await context.addInitScript(script);
    const page = await open(context);
    const flushed = await page.evaluate((r) => (trackMany(r, 0, 30), tracker.flush(10000)), run);
    check(flushed.ok === true, `${run}: flush did not complete: ${JSON.stringify(flushed)}`);
    exactlyOnce(run, 30);
    await context.close();
  }
});

await test("opt-out stops collection and clears the queue", async () => {
  const context = await chrome.newContext();
  const page = await open(context, 60000);
  const stats = await page.evaluate(() => {
    trackMany("optout", 0, 10);
    return Promise.resolve().then(() => {
      tracker.optOut();
      trackMany("optout", 10, 10);
      return tracker.flush(2000).then(() => tracker.stats());
    });
  });
  check(stats.dropped_opted_out === 10 && stats.tracked === 10 && stats.sent === 0, JSON.stringify(stats));
  await page.goto("about:blank");
  await sleep(500);
  check(arrived("optout").counts.size === 0, "events sent after opt-out");
  await context.close();
});

await test("page-hide events of a visit that never got an answer are kept and sent by the next page", async () => {
  // Rule: an event leaves storage only when a collector answered for it.
  const context = await chrome.newContext();
  await collector.stop();
  const page = await open(context, 60000); // nothing leaves before the page does
  await page.evaluate(() => trackMany("hidden", 0, 40));
  await page.goto("about:blank"); // keepalive requests fail: nobody listens
  await sleep(300);
  await collector.start();
  await open(context, 100); // the next page of the site
  await until("the events of the closed page", () => arrived("hidden").counts.size === 40, 20000);
  await sleep(500);
  exactlyOnce("hidden", 40);
  await context.close();
});

await test("keepalive bodies within 64 KiB of bytes (not UTF-16 units), in flight included: page hide", async () => {
  const context = await chrome.newContext();
  const page = await open(context, 60000);
  // One answered request first: the page has seen the collector.
  const first = await page.evaluate(() => (trackBig("cjk-hide", 0, 1, 10), tracker.flush(10000)));
  check(first.ok, JSON.stringify(first));
  // Two events of ~42 KB each in UTF-8 (14,000 CJK characters: 14,000 code units).
  await page.evaluate(() => trackBig("cjk-hide", 1, 2, 14000));
  await page.goto("about:blank");
  await sleep(500);
  await open(context, 100); // whatever did not fit the quota is sent by the next page
  await until("both large events", () => arrivedErrors("cjk-hide").size === 3, 20000);
  await sleep(500);
  const seen = arrivedErrors("cjk-hide");
  for (const [m, n] of seen) check(n === 1, `${m} arrived ${n} times`);
  await context.close();
});

await test("keepalive bodies within 64 KiB of bytes: a large batch in normal operation is delivered", async () => {
  const context = await chrome.newContext();
  const page = await open(context, 100, "&guard=1");
  // Three events of 36 KB of UTF-8 each: one batch of ~108 KB but 36,000 code units.
  const flushed = await page.evaluate(() => (trackBig("cjk-batch", 0, 3, 12000), tracker.flush(15000)));
  check(flushed.ok, `not delivered: ${JSON.stringify(flushed)} ${JSON.stringify(await page.evaluate(() => tracker.stats()))}`);
  const seen = arrivedErrors("cjk-batch");
  check(seen.size === 3 && [...seen.values()].every((n) => n === 1), JSON.stringify([...seen]));
  const k = await page.evaluate(() => window.keepalive);
  check(k.max <= 65536, `a keepalive request of ${k.max} bytes (with those in flight) was made`);
  await context.close();
});

await test("opt-out and opt-in reach every open tab of the site as soon as it sees them", async () => {
  const context = await chrome.newContext();
  const a = await open(context, 100), b = await open(context, 100);
  await a.evaluate(() => tracker.optOut());
  // The other tab follows as soon as the browser hands it the setting (storage reaches
  // another tab's renderer asynchronously: a full suite on 2 busy cores once saw tab B
  // still collect in the next task); from then on nothing more is tracked or sent.
  const t0 = Date.now();
  await until("tab B to see the opt-out", () => b.evaluate(() => tracker.optedOut), 2000);
  console.log(`     tab B followed within ${Date.now() - t0} ms`);
  const during = await b.evaluate(async () => {
    trackMany("tabs-out", 0, 10);
    const flushed = await tracker.flush(2000);
    return { out: tracker.optedOut, flushed, stats: tracker.stats() };
  });
  check(during.out === true, `tab B still collects: ${JSON.stringify(during)}`);
  await sleep(500);
  check(arrived("tabs-out").counts.size === 0, "tab B sent events after tab A opted out");
  await a.evaluate(() => tracker.optIn());
  // The opt-in reaches tab B the same way: asynchronously (CI once saw it one task late).
  const t1 = Date.now();
  await until("tab B to see the opt-in", () => b.evaluate(() => !tracker.optedOut), 2000);
  console.log(`     tab B followed the opt-in within ${Date.now() - t1} ms`);
  const after = await b.evaluate(async () => {
    trackMany("tabs-in", 0, 10);
    return { out: tracker.optedOut, flushed: await tracker.flush(10000) };
  });
  check(after.out === false && after.flushed.ok, `tab B did not collect again: ${JSON.stringify(after)}`);
  exactlyOnce("tabs-in", 10);
  await context.close();
});

await test("a failed load of the core is retried: init() again, or createTracker() by itself, loses nothing", async () => {
  for (const mode of ["init", "create"]) {
    const context = await chrome.newContext();
    let failedOnce = false;
    await context.route("**/core_bg.wasm", (route) => {
      if (failedOnce) return route.continue();
      failedOnce = true;
      return route.fulfill({ status: 503, body: "unavailable" });
    });
    const page = await context.newPage();
    page.on("pageerror", (e) => console.log("     page error:", e.message));
    await page.goto(`${pages.url}/late.html?endpoint=${encodeURIComponent(collector.url)}`);
    await page.waitForFunction(() => window.ready === true);
    const r = await page.evaluate((m) => window.run(m), mode);
    check(failedOnce, "the route never failed the load");
    if (mode === "init") check(/could not be loaded|503/.test(r.first), `the first init: ${r.first}`);
    else check(r.before.tracked === 20 && r.before.pending === 20, `before the core: ${JSON.stringify(r.before)}`);
    check(r.flushed.ok && r.stats.sent === 20, `${mode}: ${JSON.stringify(r)}`);
    exactlyOnce(`late-${mode}`, 20);
    await context.close();
  }
});

await test("flush() resolves { ok, pending }: ok when all is answered, pending when the timeout passed", async () => {
  const context = await chrome.newContext();
  await collector.stop();
  const page = await open(context, 100);
  const late = await page.evaluate(() => (trackMany("flushshape", 0, 5), tracker.flush(500)));
  check(late.ok === false && late.pending === 5, JSON.stringify(late));
  await collector.start();
  const done = await page.evaluate(() => tracker.flush(15000));
  check(done.ok === true && done.pending === 0, JSON.stringify(done));
  exactlyOnce("flushshape", 5);
  await context.close();
});

await test("a strict Content-Security-Policy (no 'wasm-unsafe-eval'): the same core as JavaScript delivers", async () => {
  const context = await chrome.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${pages.url}/csp.html?endpoint=${encodeURIComponent(collector.url)}`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 15000 });
  // 100 events, then 2,000 of 1 KB: the core's memory grows while JavaScript holds views of it.
  const flushed = await page.evaluate(() => (trackMany("csp", 0, 100), trackMany("csp", 100, 2000, 1000), tracker.flush(20000)));
  check(flushed.ok, `${JSON.stringify(flushed)} ${errors.join("; ")}`);
  const seen = arrivedErrors("csp");
  check(seen.size === 2100 && [...seen.values()].every((n) => n === 1), `${seen.size} of 2100 arrived`);
  check(collector.bad() === 0, "dead letters");
  const asm = await page.evaluate(() => performance.getEntriesByType("resource").some((r) => r.name.endsWith("/core_asm.js")));
  check(asm, "the JavaScript build of the core was not what ran");
  await context.close();
});

/** A page with the module loaded and nothing else (`window.ew`, `endpoint`, `search`). */
async function bare(context) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log("     page error:", e.message));
  await page.goto(`${pages.url}/module.html?endpoint=${encodeURIComponent(collector.url)}`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

await test("a tab that comes online before its core has loaded leaves closed tabs' events for later", async () => {
  const context = await chrome.newContext();
  await collector.stop();
  const a = await open(context, 100);
  await a.evaluate(() => trackMany("adopt-late", 0, 30));
  await sleep(1200); // stored, failing
  await a.close();
  let wasm = false;
  await context.route("**/core_bg.wasm", (route) => (wasm ? route.continue() : route.fulfill({ status: 503, body: "" })));
  const b = await bare(context);
  await b.evaluate(() => { window.t = ew.createTracker({ endpoint, writeKey: "browser-test", maxBatchDelayMs: 100 }); });
  await context.setOffline(true);
  await context.setOffline(false); // "online" fires while the core is not loaded
  await sleep(300);
  await collector.start();
  wasm = true;
  await b.evaluate(() => t.ready);
  await until("the closed tab's events", () => arrived("adopt-late").counts.size === 30, 40000);
  exactlyOnce("adopt-late", 30);
  await context.close();
});

await test("offline for longer than the retry deadline: nothing expires, all is sent when back", async () => {
  const context = await chrome.newContext();
  const page = await context.newPage();
  await page.clock.install();
  await page.goto(`${pages.url}/track.html?endpoint=${encodeURIComponent(collector.url)}&delay=100`);
  await page.waitForFunction(() => window.ready === true);
  await context.setOffline(true);
  await page.evaluate(() => trackMany("long-offline", 0, 20));
  await page.clock.runFor(6 * 60 * 1000); // past the Rust tracker's 5-minute deadline
  const during = await page.evaluate(() => tracker.stats());
  check(during.dropped_retry_expired === 0 && during.pending === 20, JSON.stringify(during));
  await context.setOffline(false);
  await page.clock.runFor(2000);
  await until("the events tracked offline", () => arrived("long-offline").counts.size === 20, 15000);
  exactlyOnce("long-offline", 20);
  await context.close();
});

await test("flush() is not ok while page-hide requests are still unanswered", async () => {
  const context = await chrome.newContext();
  await context.route("**/v1/batch", async (route) => (await sleep(800), route.continue()));
  const page = await open(context, 60000);
  const r = await page.evaluate(async () => {
    trackMany("hide-flush", 0, 50);
    dispatchEvent(new Event("pagehide")); // keepalive requests leave, unanswered for 800 ms
    return tracker.flush(10000);
  });
  check(r.ok && r.pending === 0, `flush said ${JSON.stringify(r)}`);
  exactlyOnce("hide-flush", 50);
  await context.close();
});

await test("the keepalive quota is the page's: two trackers together stay within 64 KiB", async () => {
  const context = await chrome.newContext();
  const page = await open(context, 60000, "&guard=1");
  await page.evaluate(async () => {
    const { init } = await import("/pkg/index.js");
    window.second = await init({ endpoint: new URLSearchParams(location.search).get("endpoint"), writeKey: "second", maxBatchDelayMs: 60000 });
    const big = (t, run) => { for (let i = 0; i < 2; i++) t.track({ schema: "iglu:com.example.web/frontend_error/jsonschema/1-0-0", data: { message: `${run}-${i}`, severity: "error", stack: "漢".repeat(9000) } }); };
    big(tracker, "quota-a");
    big(second, "quota-b");
    await new Promise((r) => setTimeout(r, 0));
    dispatchEvent(new Event("pagehide"));
  });
  const k = await page.evaluate(() => window.keepalive);
  check(k.max <= 65536 && k.count > 0, `keepalive requests reached ${k.max} bytes in flight`);
  await context.close();
});

await test("opting out drops closed tabs' stored events too, and a user set before the core loads applies", async () => {
  const context = await chrome.newContext();
  await collector.stop();
  const a = await open(context, 100);
  await a.evaluate(() => trackMany("out-closed", 0, 10));
  await sleep(1200);
  await a.close();
  const b = await open(context, 100);
  await b.evaluate(() => (tracker.optOut(), tracker.optIn()));
  await collector.start();
  const c = await bare(context);
  await c.evaluate(async () => {
    const t = ew.createTracker({ endpoint, writeKey: "browser-test", maxBatchDelayMs: 100 });
    t.setUserId("u-early");
    t.track(search("early-user", 0));
    await t.ready;
    await t.flush(10000);
  });
  await sleep(1500);
  check(arrived("out-closed").counts.size === 0, "events of a closed tab were sent after an opt-out");
  const e = collector.good().find((x) => x.data.query === "early-user-0");
  check(e && e.context.user_id === "u-early", JSON.stringify(e && e.context));
  await context.close();
});

await test("a request in flight at an opt-out is never sent again, even after an opt-in before it fails", async () => {
  const context = await chrome.newContext();
  let held = 0;
  // The first request is held for 1.5 s and then fails: its events would be sent again.
  await context.route("**/v1/batch", async (route) => (held++ ? route.continue() : (await sleep(1500), route.abort())));
  const page = await open(context, 60000);
  await page.evaluate(() => (trackMany("out-flying", 0, 10), tracker.flush(100)));
  await until("a request in flight", () => held > 0, 5000);
  await page.evaluate(() => (tracker.optOut(), tracker.optIn()));
  await sleep(1500 + 3000); // the failure, then past the first retry's backoff
  await page.evaluate(() => tracker.flush(5000));
  check(arrived("out-flying").counts.size === 0, "events in flight at an opt-out were sent again");
  const s = await page.evaluate(() => tracker.stats());
  check(s.dropped_opted_out === 10 && s.pending === 0, JSON.stringify(s));
  await context.close();
});

await test("probe: random reloads, closes, outages and offline spells across two tabs lose nothing and double nothing", async () => {
  // Seeded, so a failure replays: BROWSER_PROBE_SEED=<n>.
  let x = Number(process.env.BROWSER_PROBE_SEED || Date.now() % 100000) | 0 || 1;
  const seed = x;
  const rand = (n) => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) % n;
  };
  // Batch delays from short to longer than the whole run (then only page hide sends).
  const delay = () => [50, 300, 60000][rand(3)];
  const context = await chrome.newContext();
  const tabs = [await open(context, delay()), await open(context, delay())];
  let tracked = 0, offline = false;
  const log = [];
  // A page cannot load while offline: navigations go online for their own sake.
  const online = async (load) => {
    if (offline) await context.setOffline(false);
    await load();
    if (offline) await context.setOffline(true);
  };
  try {
  for (let step = 0; step < 24; step++) {
    const t = rand(2), action = rand(8);
    log.push(`${action}@${t}`);
    if (action <= 2) {
      const n = 1 + rand(40);
      await tabs[t].evaluate(([from, n]) => trackMany("probe", from, n), [tracked, n]);
      tracked += n;
    } else if (action === 3) {
      await online(async () => {
        await tabs[t].reload();
        await tabs[t].waitForFunction(() => window.ready === true);
      });
    } else if (action === 4) {
      await tabs[t].goto("about:blank"); // the page goes; the tab stays
      await online(async () => {
        await tabs[t].goto(`${pages.url}/track.html?endpoint=${encodeURIComponent(collector.url)}&delay=${delay()}`);
        await tabs[t].waitForFunction(() => window.ready === true);
      });
    } else if (action === 5) {
      await tabs[t].close(); // the tab goes: another one adopts its events
      await online(async () => (tabs[t] = await open(context, delay())));
    } else if (action === 6) {
      if (collector.proc) await collector.stop(); else await collector.start();
    } else {
      offline = !offline;
      await context.setOffline(offline);
    }
    await sleep(rand(2) ? 0 : rand(400));
  }
  } finally {
    if (!collector.proc) await collector.start();
    await context.setOffline(false);
  }
  // A fresh page of the site adopts what closed pages left; the open tabs flush.
  tabs.push(await open(context, 50));
  for (const tab of tabs) await tab.evaluate(() => tracker.flush(10000));
  await until(`the probe's ${tracked} events (seed ${seed}: ${log.join(" ")})`, () => arrived("probe").counts.size === tracked, 60000);
  await sleep(1000);
  exactlyOnce("probe", tracked);
  await context.close();
});

await test("up to maxInFlight requests are in flight at once (default 4; 1 sends one at a time), each event once", async () => {
  for (const [extra, want] of [["", 4], ["&window=1", 1]]) {
    const context = await chrome.newContext();
    let now = 0, max = 0;
    await context.route("**/v1/batch", async (route) => {
      max = Math.max(max, ++now);
      await sleep(300);
      await route.continue();
      now--;
    });
    const page = await open(context, 50, "&batch=50" + extra);
    const run = "window" + want;
    await page.evaluate((run) => trackMany(run, 0, 1000), run);
    await until(`the ${run} events`, () => arrived(run).counts.size === 1000, 20000);
    exactlyOnce(run, 1000);
    check(max === want, `${max} requests in flight at once, want ${want}`);
    await context.close();
  }
});

// Personal data (eventwire/pii). The marks come from schemas/ through `eventwire codegen
// --lang ts` (transpiled for the page); the key pair from `eventwire pii keygen`.
const CUSTOMER = "iglu:com.example.shop/customer/jsonschema/1-0-0";
const SEALED = /^ew1\.[A-Za-z0-9_-]{11}\.[A-Za-z0-9_-]{87}\.[A-Za-z0-9_-]{23,}$/;
let piiKeys;
function piiSetup() {
  if (piiKeys) return piiKeys;
  execFileSync(bin, ["codegen", "--schemas", join(ROOT, "schemas"), "--lang", "ts", "--out", join(build, "events.ts")], { stdio: "ignore" });
  execFileSync(join(HERE, "node_modules/.bin/esbuild"), [join(build, "events.ts"), "--format=esm", `--outfile=${join(build, "events.js")}`, "--log-level=warning"]);
  const dir = mkdtempSync(join(tmpdir(), "eventwire-pii-"));
  const keygen = (name) => {
    execFileSync(bin, ["pii", "keygen", "--public", join(dir, name + ".pub"), "--private", join(dir, name + ".key")], { stdio: "ignore" });
    return { pub: readFileSync(join(dir, name + ".pub"), "utf8").trim(), key: join(dir, name + ".key") };
  };
  piiKeys = { dir, main: keygen("main"), other: keygen("other") };
  return piiKeys;
}

function openPii(context, extra = "", delay = 200) {
  const { main } = piiSetup();
  return open(context, delay, `&key=${encodeURIComponent(main.pub)}${extra}`, "pii.html");
}

/** The good sink's raw lines of the events of one anonymous id (one context's pages). */
function goodLines(aid) {
  return collector.lines("good.jsonl").filter((l) => JSON.parse(l).context.anonymous_id === aid);
}

/** Everything the collector wrote, as text, with the bodies it kept raw (malformed ones, as base64) decoded. */
function sinkText() {
  const text = ["good.jsonl", "bad.jsonl"].map((f) => join(collector.dir, f)).filter(existsSync).map((f) => readFileSync(f, "utf8")).join("\n");
  const raw = collector.lines("bad.jsonl").map((l) => JSON.parse(l).raw).filter((r) => typeof r === "string");
  return [text, ...raw.map((r) => Buffer.from(r, "base64").toString("utf8"))].join("\n");
}

/** What the site keeps in the page's storage, as text. */
const storageText = (page) => page.evaluate(() => JSON.stringify(Object.entries(localStorage)));

/** `eventwire pii open` over `lines`: its status, opened events and stderr. */
function piiOpen(lines, key = piiSetup().main.key) {
  const file = join(piiSetup().dir, "lines.jsonl");
  writeFileSync(file, lines.join("\n") + "\n");
  const r = spawnSync(bin, ["pii", "open", "--private-key", key, "--schemas", join(ROOT, "schemas"), file], { encoding: "utf8" });
  return { status: r.status, events: r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l)), stderr: r.stderr };
}

await test("pii: RFC 9180 A.3.1 test vectors through the package's HPKE (@hpke/core on Chromium's WebCrypto)", async () => {
  piiSetup();
  const context = await chrome.newContext();
  const page = await open(context, 200, "", "pii.html");
  const got = await page.evaluate(async () => {
    const hex = (h) => Uint8Array.from(h.match(/../g), (b) => parseInt(b, 16));
    const toHex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
    const v = {
      info: "4f6465206f6e2061204772656369616e2055726e",
      ikmE: "4270e54ffd08d79d5928020af4686d8f6b7d35dbe470265f1f5aa22816ce860e",
      pkEm: "04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac98536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4",
      ikmR: "668b37171f1072f3cf12ea8a236a45df23fc13b82af3609ad1e354f6ef817550",
      pkRm: "04fe8c19ce0905191ebc298a9245792531f26f0cece2460639e8bc39cb7f706a826a779b4cf969b8a0e539c7f62fb3d30ad6aa8f80e30f1d128aafd68a2ce72ea0",
      pt: "4265617574792069732074727574682c20747275746820626561757479",
      aad0: "436f756e742d30",
      ct0: "5ad590bb8baa577f8619db35a36311226a896e7342a6d836d8b7bcd2f20b6c7f9076ac232e3ab2523f39513434",
    };
    const suite = ew.hpke;
    const recipient = await suite.kem.deriveKeyPair(hex(v.ikmR).buffer);
    const sender = await suite.createSenderContext({ recipientPublicKey: await suite.kem.deserializePublicKey(hex(v.pkRm)), info: hex(v.info), ekm: hex(v.ikmE).buffer });
    const ct = await sender.seal(hex(v.pt), hex(v.aad0));
    const opener = await suite.createRecipientContext({ recipientKey: recipient.privateKey, enc: hex(v.pkEm), info: hex(v.info) });
    const pt = await opener.open(hex(v.ct0), hex(v.aad0));
    return {
      pkRm: toHex(await suite.kem.serializePublicKey(recipient.publicKey)) === v.pkRm,
      enc: toHex(sender.enc) === v.pkEm,
      ct: toHex(ct) === v.ct0,
      pt: toHex(pt) === v.pt,
    };
  });
  check(got.pkRm && got.enc && got.ct && got.pt, `vector mismatch: ${JSON.stringify(got)}`);
  await context.close();
});

await test("pii: sealed in the page, opened by `eventwire pii open`; a changed byte, a moved value, the wrong key each refused by name", async () => {
  const context = await chrome.newContext();
  const page = await openPii(context);
  const aid = await page.evaluate(() => tracker.anonymousId());
  const r = await page.evaluate(async () => (trackPii(tracker, "seal", 0, 10), { flushed: await tracker.flush(10000), stats: tracker.stats() }));
  check(r.flushed.ok && r.stats.tracked === 20 && r.stats.sent === 20 && r.stats.sealing === 0 && r.stats.pending === 0, JSON.stringify(r));
  const lines = goodLines(aid);
  check(lines.length === 20, `${lines.length} of 20 events in the good sink`);
  check(!/seal-(mail|name|entity)-/.test(sinkText()), "a marked value reached the collector in clear");
  const events = lines.map((l) => JSON.parse(l));
  for (const e of events) {
    const c = e.schema === CUSTOMER ? e.data : e.entities[0].data;
    check(SEALED.test(c.email) && SEALED.test(c.name) && /^C-1\d{3}$/.test(c.customer_id) && c.tier === "gold", JSON.stringify(e));
  }
  // Opened with the private key: every value at its place, checked against its schema.
  const opened = piiOpen(lines);
  check(opened.status === 0 && opened.events.length === 20, `pii open: ${opened.status}\n${opened.stderr}`);
  for (const e of opened.events) {
    const i = Number((e.schema === CUSTOMER ? e.data : e.entities[0].data).customer_id.slice(2)) - 1000;
    if (e.schema === CUSTOMER) check(e.data.email === `seal-mail-${i}@example.com` && e.data.name === `seal-name-${i}`, JSON.stringify(e.data));
    else check(e.entities[0].data.email === `seal-entity-${i}@example.com` && e.data.query === `seal-${i}`, JSON.stringify(e));
  }
  // Each hostile change, alone, on a copy of the first customer event and search event.
  const c0 = lines.findIndex((l) => JSON.parse(l).schema === CUSTOMER);
  const c1 = lines.findIndex((l, i) => i > c0 && JSON.parse(l).schema === CUSTOMER);
  const s0 = lines.findIndex((l) => JSON.parse(l).schema !== CUSTOMER);
  const edit = (i, f) => {
    const e = JSON.parse(lines[i]);
    f(e);
    return JSON.stringify(e);
  };
  const flip = (sealed) => {
    const at = sealed.length - 10; // inside the ciphertext, where every bit of a character counts
    return sealed.slice(0, at) + (sealed[at] === "A" ? "B" : "A") + sealed.slice(at + 1);
  };
  const other = JSON.parse(lines[c1]).data.email;
  const cases = [
    ["a changed byte", edit(c0, (e) => (e.data.email = flip(e.data.email))), "/data/email: does not open"],
    ["swapped with another field", edit(c0, (e) => ([e.data.email, e.data.name] = [e.data.name, e.data.email])), "/data/name: does not open"],
    ["moved from another event", edit(c0, (e) => (e.data.email = other)), "/data/email: does not open"],
    ["moved into an entity", edit(s0, (e) => (e.entities[0].data.email = JSON.parse(lines[c0]).data.email)), "/entities/0/data/email: does not open"],
  ];
  for (const [what, line, want] of cases) {
    const got = piiOpen([line]);
    check(got.status === 1 && got.stderr.includes("line 1: " + want), `${what}: status ${got.status}, stderr:\n${got.stderr}`);
  }
  const wrong = piiOpen([lines[c0]], piiSetup().other.key);
  check(wrong.status === 1 && /line 1: \/data\/email: sealed to key [A-Za-z0-9_-]{11}, which is not among the keys given/.test(wrong.stderr), wrong.stderr);
  await context.close();
});

await test("pii: without a key, a marked event throws at track(); sent in clear on request, the collector refuses it and keeps no value", async () => {
  piiSetup();
  const context = await chrome.newContext();
  const page = await open(context, 200, "", "pii.html");
  const r = await page.evaluate(async () => {
    const t = await ew.init(ew.options);
    const thrown = [];
    for (const event of [
      { schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-1000", email: "nokey-mail@example.com" } },
      { schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "nokey-0", results_count: 0 }, entities: [{ schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-1000", name: "nokey-name" } }] },
    ]) {
      try {
        t.track(event);
      } catch (e) {
        thrown.push(e.message);
      }
    }
    t.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "nokey-1", results_count: 1 } });
    const clear = await ew.init({ ...ew.options, sendPiiInClear: true });
    clear.track({ schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-1001", email: "inclear-mail@example.com" } });
    return { thrown, flushed: await t.flush(), cleared: await clear.flush(), stats: t.stats(), clear: clear.stats() };
  });
  check(r.thrown.length === 2 && r.thrown.every((m) => m.includes("x-pii") && m.includes("withPii")), JSON.stringify(r.thrown));
  check(r.stats.tracked === 1 && r.stats.sent === 1, JSON.stringify(r.stats));
  check(r.clear.tracked === 1 && r.clear.rejected === 1, JSON.stringify(r.clear));
  const text = sinkText();
  check(!/inclear-mail|nokey-mail|nokey-name/.test(text), "a value sent in clear was kept by the collector");
  check(readFileSync(join(collector.dir, "bad.jsonl"), "utf8").includes("pii_unsealed"), "no pii_unsealed dead letter");
  await context.close();
});

await test("pii: what follows a marked event waits for its sealing (order, user), and flush resolves only once it is delivered", async () => {
  const context = await chrome.newContext();
  const page = await openPii(context);
  const aid = await page.evaluate(() => tracker.anonymousId());
  const r = await page.evaluate(async () => {
    tracker.track({ schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-2000", email: "order-mail@example.com" } });
    tracker.setUserId("user-after-seal");
    tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "order-0", results_count: 0 } });
    const sealing = tracker.stats().sealing;
    return { sealing, flushed: await tracker.flush(10000) };
  });
  // Read as soon as flush resolved: both events are in the sink.
  const events = goodLines(aid).map((l) => JSON.parse(l));
  check(r.sealing === 2 && r.flushed.ok, JSON.stringify(r));
  check(events.length === 2, `${events.length} of 2 events in the sink when flush resolved`);
  const [customer, search] = [events.find((e) => e.schema === CUSTOMER), events.find((e) => e.schema !== CUSTOMER)];
  check(customer.context.user_id === undefined && search.context.user_id === "user-after-seal", JSON.stringify([customer.context, search.context]));
  // The id the page chose for the sealed event is a UUID v7 of its time.
  const ms = parseInt(customer.event_id.replace(/-/g, "").slice(0, 12), 16);
  check(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(customer.event_id) && ms === Date.parse(customer.created_at), `${customer.event_id} ${customer.created_at}`);
  check(Date.parse(search.created_at) >= ms, "created_at out of order");
  await context.close();
});

await test("pii: events still being sealed at an opt-out are dropped and counted, never sent", async () => {
  const context = await chrome.newContext();
  const page = await openPii(context);
  const aid = await page.evaluate(() => tracker.anonymousId());
  await page.evaluate(() => (trackPii(tracker, "out", 0, 25), tracker.optOut()));
  await sleep(1500);
  const s = await page.evaluate(() => (tracker.optIn(), tracker.stats()));
  check(s.tracked === 50 && s.dropped_opted_out === 50 && s.sent === 0 && s.sealing === 0 && s.pending === 0, JSON.stringify(s));
  check(goodLines(aid).length === 0, "events sent after the opt-out");
  await context.close();
});

for (const [how, slow] of [["", ""], [" (sealing slower than the page's end)", "&slow=3000"]]) {
  await test(`pii: events tracked while the page goes away arrive, or the next page counts them, none twice${how}`, async () => {
    const context = await chrome.newContext();
    const page = await openPii(context, `&onhide=gone&n=20${slow}`, 60000);
    const aid = await page.evaluate(() => tracker.anonymousId());
    await page.goto("about:blank");
    await sleep(500);
    const next = await openPii(context);
    const result = await until("40 events arrived or counted", async () => {
      const lost = await next.evaluate(() => tracker.stats().dropped_shut_down);
      const lines = goodLines(aid);
      return lines.length + lost === 40 && { lost, lines };
    }, 20000);
    await sleep(500);
    const lines = goodLines(aid);
    check(lines.length === result.lines.length && new Set(lines.map((l) => JSON.parse(l).event_id)).size === lines.length, "an event arrived twice, or after it was counted");
    if (slow) check(result.lost > 0, "nothing was still being sealed when the page went away: the test proves nothing");
    check(!/gone-(mail|name|entity)-/.test(await storageText(next)), "a marked value in clear in storage");
    console.log(`     ${result.lines.length} arrived, ${result.lost} counted as lost by the next page`);
    await context.close();
  });
}

await test("pii: a tab in the background that lives on: its events are sent, and a new tab does not count them lost", async () => {
  const context = await chrome.newContext();
  const a = await openPii(context, "&slow=2000", 60000);
  const aid = await a.evaluate(() => tracker.anonymousId());
  await a.evaluate(() => (trackPii(tracker, "background", 0, 5), hidePage()));
  const b = await openPii(context);
  check((await a.evaluate(() => tracker.stats().sealing)) > 0, "the background tab was done before the new tab started: the test proves nothing");
  await until("the background tab's 10 events", () => goodLines(aid).length === 10, 30000);
  await sleep(1000); // the new tab's adoption runs at its start, and every 30 s
  const [sa, sb] = [await a.evaluate(() => tracker.stats()), await b.evaluate(() => tracker.stats())];
  check(sa.sent === 10 && sa.dropped_shut_down === 0 && sb.dropped_shut_down === 0, JSON.stringify({ a: sa, b: sb }));
  check(!/background-(mail|name|entity)-/.test(await storageText(b)), "a marked value in clear in storage");
  await context.close();
});

await test("pii: a page hidden first, then tracking, then killed: the next page counts what was still being sealed", async () => {
  const context = await chrome.newContext();
  const a = await openPii(context, "&slow=3000", 60000);
  const aid = await a.evaluate(() => tracker.anonymousId());
  // Unmarked events that cannot leave (every request of this page fails): stored, for the
  // next page to adopt, as the base package does.
  await a.route("**/v1/batch", (route) => route.abort());
  await a.evaluate(() => {
    for (let i = 0; i < 5; i++) tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: `killed-plain-${i}`, results_count: i } });
  });
  await sleep(400);
  // A background timer, or the app's own visibilitychange handler, after the tracker's ran.
  await a.evaluate(() => (hidePage(), trackPii(tracker, "killed", 0, 5)));
  const cdp = await context.newCDPSession(a);
  cdp.send("Page.crash").catch(() => {});
  await sleep(500);
  const next = await openPii(context);
  const lost = await until("the killed page's events counted", async () => (await next.evaluate(() => tracker.stats().dropped_shut_down)) || 0, 10000);
  await sleep(500);
  // The stored events at once, not at the next 30-second adoption: the count's adoption
  // does not hold the gone tab's lock when the base looks for its events.
  await until("the killed page's stored events", () => arrived("killed-plain").counts.size === 5, 10000);
  const sealed = goodLines(aid).filter((l) => !JSON.parse(l).data.query?.startsWith("killed-plain-"));
  check(lost === 10 && sealed.length === 0, `${lost} counted, ${sealed.length} arrived, of 10`);
  check(!/killed-(mail|name|entity)-/.test(await storageText(next)), "a marked value in clear in storage");
  await context.close();
});

await test("pii: an opt-out in another tab while events are sealed drops and counts them all", async () => {
  const context = await chrome.newContext();
  const page = await openPii(context, "&slow=500");
  const aid = await page.evaluate(() => tracker.anonymousId());
  // As another tab writes it, before its storage event arrives here.
  await page.evaluate(() => (trackPii(tracker, "elsewhere", 0, 5), localStorage.setItem(tracker.key + ":out", "1")));
  const s = await until("the sealing done", async () => {
    const s = await page.evaluate(() => tracker.stats());
    return s.sealing === 0 && s;
  }, 20000);
  check(s.tracked === 10 && s.dropped_opted_out === 10 && s.sent === 0 && s.pending === 0, JSON.stringify(s));
  check(goodLines(aid).length === 0, "events sent after the opt-out");
  // Another tab opts in again: the next marked event here is collected, before the storage
  // event arrives.
  const f = await page.evaluate(() => (localStorage.setItem(tracker.key + ":out", "0"), trackPii(tracker, "back-in", 0, 1), tracker.flush(10000)));
  check(f.ok && goodLines(aid).length === 2, `after the opt-in: ${JSON.stringify(f)}, ${goodLines(aid).length} of 2 arrived`);
  await context.close();
});

await test("pii: a deferred setUserId that the core refuses does not stall what follows; a number is a user id", async () => {
  const context = await chrome.newContext();
  const page = await openPii(context, "&slow=200");
  const aid = await page.evaluate(() => tracker.anonymousId());
  const r = await page.evaluate(async () => {
    tracker.track({ schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-4000", email: "defer-mail@example.com" } });
    tracker.setUserId(42);
    tracker.setUserId(Object.create(null)); // no string form: reported on the console, skipped
    tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "defer-0", results_count: 0 } });
    return tracker.flush(5000);
  });
  const search = goodLines(aid).map((l) => JSON.parse(l)).find((e) => e.data.query === "defer-0");
  check(r.ok && search && search.context.user_id === "42", `${JSON.stringify(r)} ${JSON.stringify(search && search.context)}`);
  await context.close();
});

await test("an opt-out holds without storage (storage: false), with and without sealing", async () => {
  const { main } = piiSetup();
  const context = await chrome.newContext();
  const page = await open(context, 200, "", "pii.html");
  const r = await page.evaluate(async (key) => {
    const plain = await ew.init({ endpoint: ew.options.endpoint, writeKey: "no-storage", storage: false });
    const sealing = await ew.init(ew.withPii({ ...ew.options, writeKey: "no-storage-pii", storage: false }, key));
    const out = [];
    for (const t of [plain, sealing]) {
      t.track({ schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-5000", email: "nostore-mail@example.com" } });
      t.optOut();
      await new Promise((r) => setTimeout(r, 600));
      t.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "nostore-0", results_count: 0 } });
      await t.flush(1000);
      out.push({ optedOut: t.optedOut, stats: t.stats() });
    }
    return out;
  }, main.pub);
  for (const { optedOut, stats } of r) check(optedOut && stats.sent === 0 && stats.dropped_opted_out === 1, JSON.stringify(r));
  check(arrived("nostore").counts.size === 0, "sent after an opt-out");
  await context.close();
});

await test("pii: reset() while an event is sealed: the new anonymous id at once, the event before keeps the old one", async () => {
  const context = await chrome.newContext();
  const page = await openPii(context, "&slow=300");
  const r = await page.evaluate(async () => {
    const before = tracker.anonymousId();
    tracker.track({ schema: "iglu:com.example.shop/customer/jsonschema/1-0-0", data: { customer_id: "C-3000", email: "reset-mail@example.com" } });
    tracker.reset();
    const after = tracker.anonymousId();
    tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "reset-0", results_count: 0 } });
    return { before, after, flushed: await tracker.flush(10000) };
  });
  check(r.before !== r.after && r.flushed.ok, JSON.stringify(r));
  check(goodLines(r.before).length === 1 && JSON.parse(goodLines(r.before)[0]).schema === CUSTOMER, "the event tracked before reset() lost its anonymous id");
  check(goodLines(r.after).length === 1 && JSON.parse(goodLines(r.after)[0]).data.query === "reset-0", "the event tracked after reset() does not have the new one");
  await context.close();
});

await test("pii: marks at hostile places (escaped names, __proto__, array items, tuples, nesting, entities) seal and open to the same values", async () => {
  const { main } = piiSetup();
  const schemas = join(HERE, "pii-schemas");
  const ts = execFileSync(bin, ["codegen", "--schemas", schemas, "--lang", "ts", "--out", "-"], { encoding: "utf8" });
  const table = ts.slice(ts.indexOf("export const PII_MARKS"));
  const marks = JSON.parse(table.slice(table.indexOf("{"), table.indexOf("\n};") + 2).replace(/,\n}$/, "\n}"));
  const HOSTILE = "iglu:com.example.pii/hostile/jsonschema/1-0-0";
  check(marks[HOSTILE] && marks[HOSTILE].length === 12, JSON.stringify(marks));
  const context = await chrome.newContext();
  const page = await open(context, 200, "", "pii.html");
  // A stand-in collector on the page's origin: the bodies as sent, each event accepted.
  const bodies = [];
  await page.route("**/stand-in/v1/batch", (route) => {
    const body = JSON.parse(route.request().postData());
    bodies.push(body);
    route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify({ accepted: body.events.length, duplicates: 0, rejected: [] }) });
  });
  // Built from JSON text: a literal `__proto__` member would set the prototype instead.
  const text = JSON.stringify({
    "a/b": "slash", "m~n": 2, "~1": null, "*": true, constructor: "c", 0: "zero", "": "empty",
    list: ["l0", null, { k: "l2" }], nested: { deep: -1.5e300, arr: [{ e: "e0" }, { f: 1 }, { e: ["e2"] }] },
    tuple: ["t0", "t1"], plain: "p",
  }).replace("{", '{"__proto__":{"x":[1,"\\u2028 😀"]},');
  const r = await page.evaluate(async ([text, marks, key, HOSTILE]) => {
    const t = await ew.init(ew.withPii({ ...ew.options, endpoint: location.origin + "/stand-in", piiMarks: marks }, key));
    const data = JSON.parse(text);
    let thrown = "";
    try {
      t.track({ schema: HOSTILE, data: { ...JSON.parse(text), "a/b": "cut \ud83d" } });
    } catch (e) {
      thrown = e.message;
    }
    t.track({ schema: HOSTILE, data, entities: [{ schema: HOSTILE, data: { plain: "no marks here" } }, { schema: HOSTILE, data }] });
    return { thrown, flushed: await t.flush(10000), stats: t.stats() };
  }, [text, marks, main.pub, HOSTILE]);
  check(r.thrown.includes("/data/a~1b is not well-formed text"), `a lone surrogate: ${r.thrown}`);
  check(r.flushed.ok && r.stats.tracked === 1 && r.stats.sent === 1, JSON.stringify(r));
  const sent = bodies.flatMap((b) => b.events);
  check(sent.length === 1, `${sent.length} events sent`);
  const e = sent[0];
  for (const data of [e.data, e.entities[1].data]) {
    const sealed = [data["a/b"], data["m~n"], data["~1"], data["__proto__"], data["*"], data.constructor, data["0"], data[""],
      data.list[0], data.list[1], data.list[2], data.nested.deep, data.nested.arr[0].e, data.nested.arr[2].e, data.tuple[0]];
    check(sealed.every((v) => SEALED.test(v)), `not sealed: ${JSON.stringify(data)}`);
    check(data.plain === "p" && data.tuple[1] === "t1" && data.nested.arr[1].f === 1, `sealed what is not marked: ${JSON.stringify(data)}`);
  }
  check(JSON.stringify(e.entities[0].data) === '{"plain":"no marks here"}', JSON.stringify(e.entities[0]));
  const file = join(piiSetup().dir, "hostile.jsonl");
  writeFileSync(file, JSON.stringify(e) + "\n");
  const opened = spawnSync(bin, ["pii", "open", "--private-key", main.key, "--schemas", schemas, file], { encoding: "utf8" });
  check(opened.status === 0, `pii open: ${opened.status}\n${opened.stderr}`);
  // Compared with members sorted (the opener writes them in its own order).
  const canon = (v) => (Array.isArray(v) ? v.map(canon) : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v);
  const same = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));
  const back = JSON.parse(opened.stdout);
  const want = JSON.parse(text);
  check(same(back.data, want) && same(back.entities[1].data, want), `opened:\n${JSON.stringify(back.data)}\nwant:\n${JSON.stringify(want)}`);
  await context.close();
});

await test("track() handed to forEach (index as a second argument) keeps each event's own time and id", async () => {
  const context = await chrome.newContext();
  const page = await open(context);
  const t0 = Date.now();
  await page.evaluate(async () => {
    [0, 1, 2].map((i) => ({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: `foreach-${i}`, results_count: i } })).forEach(tracker.track, tracker);
    await tracker.flush(10000);
  });
  exactlyOnce("foreach", 3);
  const times = collector.good().filter((e) => String(e.data.query).startsWith("foreach-")).map((e) => Date.parse(e.created_at));
  check(times.every((t) => t >= t0 - 5000), `created_at: ${times.map((t) => new Date(t).toISOString())}`);
  await context.close();
});

await test("stats add up before the core loads and at an opt-out in the same task as the calls", async () => {
  piiSetup();
  const context = await chrome.newContext();
  const page = await open(context, 200, "", "pii.html");
  const r = await page.evaluate(async () => {
    const search = (i) => ({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: `count-${i}`, results_count: i } });
    // Before its core loads a tracker keeps maxQueueEvents calls: 2 here, the rest dropped.
    const early = ew.createTracker({ endpoint: ew.options.endpoint, maxQueueEvents: 2, writeKey: "count-early" });
    for (let i = 0; i < 12; i++) early.track(search(i));
    const before = early.stats();
    early.track(search(12));
    early.optOut();
    const out = early.stats();
    early.optIn();
    await early.ready;
    const t = await ew.init({ endpoint: ew.options.endpoint, writeKey: "count-later" });
    for (let i = 0; i < 3; i++) t.track(search(i));
    t.optOut();
    const later = t.stats();
    t.optIn();
    return { before, out, later };
  });
  const ok = (s) => s.tracked === s.sent + s.rejected + s.pending + Object.keys(s).filter((k) => k.startsWith("dropped_")).reduce((n, k) => n + s[k], 0);
  check(r.before.tracked === 12 && r.before.pending === 2 && r.before.dropped_queue_full === 10 && ok(r.before), JSON.stringify(r.before));
  check(r.out.tracked === 13 && r.out.dropped_queue_full === 11 && r.out.dropped_opted_out === 2 && r.out.pending === 0 && ok(r.out), JSON.stringify(r.out));
  check(r.later.tracked === 3 && r.later.dropped_opted_out === 3 && ok(r.later), JSON.stringify(r.later));
  await context.close();
});

await test("events a page tracks in its own pagehide handler (after the tracker's) still leave", async () => {
  const context = await chrome.newContext();
  const page = await open(context, 60000, "&onhide=own-hide&n=20");
  await page.goto("about:blank");
  await open(context, 100); // the next page adopts what was stored
  await until("the events tracked at page hide", () => arrived("own-hide").counts.size === 20, 15000);
  await sleep(300);
  exactlyOnce("own-hide", 20);
  await context.close();
});

await test("pii: 10,000 track() calls with sealing on (the figures of docs/benchmarks.md)", async () => {
  const context = await chrome.newContext();
  const plain = await open(context, 200, "&batch=500");
  const base = await plain.evaluate(async () => {
    const t0 = performance.now();
    trackMany("plain10k", 0, 10000);
    const calls = performance.now() - t0;
    const f = await tracker.flush(60000);
    return { calls, total: performance.now() - t0, ok: f.ok };
  });
  await context.close();
  const sealing = await chrome.newContext();
  const page = await openPii(sealing);
  const aid = await page.evaluate(() => tracker.anonymousId());
  const r = await page.evaluate(async () => {
    const t0 = performance.now();
    trackPii(tracker, "bulk", 0, 5000); // 10,000 events, 20,000 sealed values
    const calls = performance.now() - t0;
    await new Promise((ok) => { const poll = () => (tracker.stats().sealing ? setTimeout(poll, 5) : ok()); poll(); });
    const sealed = performance.now() - t0;
    const f = await tracker.flush(120000);
    return { calls, sealed, total: performance.now() - t0, ok: f.ok, stats: tracker.stats() };
  });
  check(base.ok && r.ok && r.stats.sent === 10000 && r.stats.tracked === 10000, JSON.stringify(r));
  const lines = goodLines(aid);
  check(lines.length === 10000 && new Set(lines.map((l) => JSON.parse(l).event_id)).size === 10000, `${lines.length} of 10,000 arrived`);
  check(!/bulk-(mail|name|entity)-/.test(sinkText()), "a marked value in clear");
  const f = (ms) => `${Math.round(ms)} ms`;
  console.log(`     without sealing: calls ${f(base.calls)}, all delivered ${f(base.total)}`);
  console.log(`     with sealing (20,000 values): calls ${f(r.calls)}, all sealed ${f(r.sealed)}, all delivered ${f(r.total)}`);
  await sealing.close();
});

await test("the package loads in a bundler (esbuild)", async () => {
  const entry = join(HERE, "size-entry.js");
  execFileSync(join(HERE, "node_modules/.bin/esbuild"), [entry, "--bundle", "--minify", "--format=esm", `--outfile=${join(build, "app.js")}`, "--log-level=warning"]);
  writeFileSync(join(build, "core_bg.wasm"), readFileSync(join(ROOT, "sdk-wasm/npm/dist/core_bg.wasm")));
  const context = await chrome.newContext();
  const page = await context.newPage();
  await page.goto(`${pages.url}/bundled.html?endpoint=${encodeURIComponent(collector.url)}`);
  await page.waitForFunction(() => window.done === true, null, { timeout: 10000 });
  await until("the bundled page's event", () => arrived("bundled").counts.size === 1, 10000);
  await context.close();
});

await test("types: a wrong `data` for a `schema` is a TypeScript error (tsc, @ts-expect-error)", async () => {
  execFileSync(bin, ["codegen", "--schemas", join(ROOT, "schemas"), "--lang", "ts", "--out", join(HERE, "types/events.ts")], { stdio: "ignore" });
  execFileSync(join(HERE, "node_modules/.bin/tsc"), ["-p", join(HERE, "types/tsconfig.json")], { stdio: "inherit" });
  // The subpath's source against @hpke/core's declarations: a misread field of its API is an
  // error here (it once gave sealed values with an empty ciphertext).
  execFileSync(join(HERE, "node_modules/.bin/tsc"), ["-p", join(ROOT, "sdk-wasm/npm/src/tsconfig.json")], { stdio: "inherit" });
});

await test("size: wasm + JS of a minimal init + track, gzipped, within the budget", async () => {
  const budget = Number(readFileSync(join(HERE, "size-budget.txt"), "utf8").trim());
  const js = gzipSync(readFileSync(join(build, "app.js")), { level: 9 }).length;
  const wasm = gzipSync(readFileSync(join(ROOT, "sdk-wasm/npm/dist/core_bg.wasm")), { level: 9 }).length;
  console.log(`     js ${js} B + wasm ${wasm} B = ${js + wasm} B gzipped (budget ${budget} B)`);
  check(js + wasm <= budget, `the package grew past its budget: ${js + wasm} > ${budget} bytes`);
});

await test("size: the subpath eventwire/pii, gzipped: what a page that seals adds to init + track", async () => {
  const esbuild = join(HERE, "node_modules/.bin/esbuild");
  const gz = (f) => gzipSync(readFileSync(join(build, f)), { level: 9 }).length;
  for (const [entry, out] of [["size-entry.js", "app.js"], ["size-entry-pii.js", "app-pii.js"]]) {
    execFileSync(esbuild, [join(HERE, entry), "--bundle", "--minify", "--format=esm", `--outfile=${join(build, out)}`, "--log-level=warning"]);
  }
  const budget = Number(readFileSync(join(HERE, "pii-size-budget.txt"), "utf8").trim());
  const extra = gz("app-pii.js") - gz("app.js");
  console.log(`     eventwire/pii adds ${extra} B gzipped (budget ${budget} B); the page without it: ${gz("app.js")} B of JS`);
  check(extra > 0 && extra <= budget, `the subpath grew past its budget: ${extra} > ${budget} bytes`);
});

await chrome.close();
await collector.stop();
collector.cleanup();
await pages.close();
finish();
