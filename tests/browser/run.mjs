// The npm package `eventwire` in Debian's Chromium against the real collector (loopback,
// CORS on). Run by scripts/test.sh after scripts/build-npm.sh:
//   EVENTWIRE_BIN=target/debug/eventwire node tests/browser/run.mjs
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Collector, HERE, ROOT, browser, pageServer, sleep, until } from "./lib.mjs";

const bin = process.env.EVENTWIRE_BIN || join(ROOT, "target/debug/eventwire");
const build = mkdtempSync(join(tmpdir(), "eventwire-build-"));
const pages = await pageServer(build);
const collector = new Collector(bin, pages.url);
await collector.start();
const chrome = await browser();
let passed = 0, failed = 0;

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${e.stack.split("\n").join("\n     ")}`);
  }
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

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

async function open(context, delay = 200) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log("     page error:", e.message));
  await page.goto(`${pages.url}/track.html?endpoint=${encodeURIComponent(collector.url)}&delay=${delay}`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

await test("a page tracks events and the collector gets each event id once", async () => {
  const context = await chrome.newContext();
  const page = await open(context);
  const flushed = await page.evaluate(() => (trackMany("deliver", 0, 120), tracker.flush(10000)));
  check(flushed === true, "flush did not complete");
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
  check(during.sent === 0 && during.pending === 50 && during.requests > 0, JSON.stringify(during));
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
    check(flushed === true, `${run}: flush did not complete`);
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
});

await test("size: wasm + JS of a minimal init + track, gzipped, within the budget", async () => {
  const budget = Number(readFileSync(join(HERE, "size-budget.txt"), "utf8").trim());
  const js = gzipSync(readFileSync(join(build, "app.js")), { level: 9 }).length;
  const wasm = gzipSync(readFileSync(join(ROOT, "sdk-wasm/npm/dist/core_bg.wasm")), { level: 9 }).length;
  console.log(`     js ${js} B + wasm ${wasm} B = ${js + wasm} B gzipped (budget ${budget} B)`);
  check(js + wasm <= budget, `the package grew past its budget: ${js + wasm} > ${budget} bytes`);
});

await chrome.close();
await collector.stop();
collector.cleanup();
await pages.close();
console.log(`\ntest result: ${failed ? "FAILED" : "ok"}. ${passed} passed; ${failed} failed (browser)`);
process.exit(failed ? 1 : 0);
