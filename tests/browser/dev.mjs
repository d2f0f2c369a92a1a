// The collector's dev mode in Debian's Chromium: a page's events waited for with
// `expectEvents` from eventwire/testing (tests running in parallel, each with its own test
// id), and the dev page (GET /) showing them live, filtered, with a dead letter's errors at
// their fields. Run by scripts/test.sh after run.mjs:
//   EVENTWIRE_BIN=target/debug/eventwire node tests/browser/dev.mjs
// SCREENSHOT=docs/images/dev-page.png also saves the dev page as docs/collector.md shows it.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expectEvents } from "eventwire/testing";
import { Collector, ROOT, browser, pageServer, sleep } from "./lib.mjs";
import { check, suite } from "../harness.mjs";

const bin = process.env.EVENTWIRE_BIN || join(ROOT, "target/debug/eventwire");
const pages = await pageServer(mkdtempSync(join(tmpdir(), "eventwire-build-")));
const collector = new Collector(bin, pages.url, ["--dev"]);
await collector.start();
const chrome = await browser();
const { test, finish } = suite("browser, dev mode");

const SEARCH = "iglu:com.example.web/search/jsonschema/1-0-0";

/** A page of the app under test, its tracker marked with `test`. */
async function app(context, test) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log("     page error:", e.message));
  await page.goto(`${pages.url}/track.html?endpoint=${encodeURIComponent(collector.url)}&delay=50&test=${test}`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

/** Tracks `n` searches (`bad` of them with a negative count, which the schema refuses). */
function track(page, run, n, bad = 0) {
  return page.evaluate(async ([run, n, bad]) => {
    for (let i = 0; i < n; i++) {
      tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: `${run}-${i}`, results_count: i < bad ? -1 : i } });
    }
    return tracker.flush(10000);
  }, [run, n, bad]);
}

await test("two tests in parallel each wait for their own page's events (expectEvents, test ids)", async () => {
  const context = await chrome.newContext();
  const [a, b] = await Promise.all([app(context, "checkout"), app(context, "search")]);
  // The waits start first; each answers once its own page's events are stored.
  const waits = [
    expectEvents(collector.url, { schema: SEARCH, testId: "checkout", count: 4, timeoutMs: 20000 }),
    expectEvents(collector.url, { schema: SEARCH, testId: "search", count: 6, timeoutMs: 20000 }),
  ];
  await Promise.all([track(a, "checkout", 4), track(b, "search", 6)]);
  const [mine, theirs] = await Promise.all(waits);
  check(mine.length === 4 && mine.every((e) => e.context.test_id === "checkout" && e.data.query.startsWith("checkout-")),
    `checkout saw ${JSON.stringify(mine.map((e) => [e.context.test_id, e.data.query]))}`);
  check(theirs.length === 6 && theirs.every((e) => e.context.test_id === "search"), `search saw ${theirs.length}`);
  await context.close();
});

await test("expectEvents fails with what arrived and why each near miss did not match", async () => {
  const context = await chrome.newContext();
  const page = await app(context, "near");
  await track(page, "near", 3, 1); // near-0 is refused: results_count -1
  let error;
  try {
    await expectEvents(collector.url, { schema: SEARCH, testId: "near", count: 3, timeoutMs: 500 });
  } catch (e) {
    error = e;
  }
  check(error, "expectEvents resolved with 2 of 3 events");
  const lines = error.message.split("\n");
  check(lines[0] === `expected 3 events (schema=${SEARCH}, test_id=near) within 500ms; 2 arrived`, error.message);
  check(error.arrived.length === 2 && error.nearMisses.length >= 1, error.message);
  check(/^ {2}- bad \S+ iglu:com\.example\.web\/search\/jsonschema\/1-0-0: dead-lettered as schema_invalid \(\/data\/results_count: -1 is less than the minimum of 0\)$/
    .test(lines.find((l) => l.includes("dead-lettered")) || ""), error.message);
  // A wrong test id: the events are near misses that say so.
  try {
    await expectEvents(collector.url, { schema: SEARCH, testId: "nearly", count: 1, timeoutMs: 300 });
    check(false, "an unknown test id matched");
  } catch (e) {
    check(e.nearMisses.some((m) => m.why.join() === 'test_id is "near", not "nearly"'), e.message);
  }
  // Waiting for the dead letter itself.
  const dead = await expectEvents(collector.url, { deadLetters: true, testId: "near" });
  check(dead.length === 1 && dead[0].code === "schema_invalid", JSON.stringify(dead));
  await context.close();
});

await test("a test id the collector would refuse is refused at init, before any event is lost", async () => {
  const context = await chrome.newContext();
  const page = await context.newPage();
  await page.goto(`${pages.url}/module.html`);
  const results = await page.evaluate(async (endpoint) => {
    const { init, createTracker } = await import("/pkg/index.js");
    const out = {};
    for (const [name, testId] of [["empty", ""], ["257", "a".repeat(257)], ["lone surrogate", "a\ud800"], ["number", 7], ["array", ["x"]]]) {
      try { await init({ endpoint, testId }); out[name] = "accepted"; } catch (e) { out[name] = e.message; }
      try { createTracker({ endpoint, testId }); out[name + " (createTracker)"] = "accepted"; } catch (e) { out[name + " (createTracker)"] = e.message; }
    }
    for (const [name, testId] of [["256", "a".repeat(256)], ["null", null], ["emoji", "🧪-checkout"]]) {
      try {
        const t = await init({ endpoint, testId, maxBatchDelayMs: 20 });
        t.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "tid-" + name, results_count: 1 } });
        out[name] = (await t.flush(5000)).ok ? "sent" : "not sent";
      } catch (e) { out[name] = e.message; }
    }
    return out;
  }, collector.url);
  for (const name of ["empty", "257", "lone surrogate", "number", "array"]) {
    check(results[name] === "eventwire: bad testId" && results[name + " (createTracker)"] === "eventwire: bad testId", `${name}: ${JSON.stringify(results)}`);
  }
  check(results["256"] === "sent" && results.null === "sent" && results.emoji === "sent", JSON.stringify(results));
  const stored = (await (await fetch(`${collector.url}/v1/events?kind=all&schema=${encodeURIComponent(SEARCH)}`)).json()).events
    .filter((e) => String(e.data && e.data.query).startsWith("tid-"));
  check(stored.length === 3, `stored: ${JSON.stringify(stored.map((e) => e.context))}`);
  check(stored.find((e) => e.data.query === "tid-256").context.test_id.length === 256, "the 256-character test id");
  // null is the schema's "none" (type string or null): the dev store reads it as no test id.
  check(stored.find((e) => e.data.query === "tid-null").context.test_id == null, "a null test id became one");
  await context.close();
});

await test("expectEvents refuses an expectation that would match anything, and gives a write key", async () => {
  for (const [expect, says] of [[{ testId: "" }, /test_id must be a non-empty string/], [{ schema: 7 }, /schema must be a non-empty string/],
    [{ count: 0 }, /count must be a whole number from 1/], [{ count: 2.5 }, /count must be/], [{ count: 1e21 }, /count must be/], [{ timeoutMs: "300" }, /timeoutMs must be a number/], [{ timeoutMs: 1e12 }, /from 0 to 300000/]]) {
    let error;
    try { await expectEvents(collector.url, expect); } catch (e) { error = e; }
    check(error instanceof TypeError && says.test(error.message), `${JSON.stringify(expect)}: ${error && error.message}`);
  }
  const keyed = new Collector(bin, pages.url, ["--dev", "--write-key", "k-1"]);
  await keyed.start();
  try {
    const posted = await fetch(`${keyed.url}/v1/batch`, {
      method: "POST", headers: { "content-type": "application/json", authorization: "Bearer k-1" },
      body: JSON.stringify({ sent_at: new Date().toISOString(), events: [{ event_id: crypto.randomUUID(), schema: SEARCH, data: { query: "keyed", results_count: 1 }, created_at: new Date().toISOString(), context: { library: { name: "t", version: "0" }, anonymous_id: "a", test_id: "keyed" } }] }),
    });
    check(posted.status === 200, `post: ${posted.status}`);
    let error;
    try { await expectEvents(keyed.url, { testId: "keyed", timeoutMs: 200 }); } catch (e) { error = e; }
    check(error && /answered 401.*give its write key/.test(error.message), error && error.message);
    check((await expectEvents(keyed.url, { testId: "keyed", writeKey: "k-1" })).length === 1, "with writeKey");
    check((await expectEvents(`${keyed.url}/?write_key=k-1`, { testId: "keyed" })).length === 1, "with ?write_key= in the URL");
  } finally {
    await keyed.stop();
    keyed.cleanup();
  }
});

await test("expectEvents against a collector without --dev says so", async () => {
  const plain = new Collector(bin, pages.url);
  await plain.start();
  try {
    await expectEvents(plain.url, { timeoutMs: 200 });
    check(false, "resolved");
  } catch (e) {
    check(/answered 404: dev mode is off \(start the collector with --dev\)/.test(e.message), e.message);
  } finally {
    await plain.stop();
    plain.cleanup();
  }
});

await test("the dev page shows a page's good and bad events live, filters them, and shows each error at its field", async () => {
  await fetch(`${collector.url}/v1/events/reset`, { method: "POST" });
  const context = await chrome.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: collector.url });
  const dev = await context.newPage();
  dev.on("pageerror", (e) => console.log("     dev page error:", e.message));
  await dev.goto(`${collector.url}/`);
  await dev.waitForSelector("#status.live");
  const rows = () => dev.evaluate(() => [...document.querySelectorAll("article")].filter((a) => !a.hidden).map((a) => a.dataset.kind));

  const app1 = await app(context, "dev-a"), app2 = await app(context, "dev-b");
  // Live: each event is on the page within 1 s of the collector answering for it.
  for (const [page, run, n, bad] of [[app1, "dev-a", 3, 1], [app2, "dev-b", 2, 0]]) {
    const flushed = await track(page, run, n, bad);
    check(flushed.ok, `flush: ${JSON.stringify(flushed)}`);
    const t0 = Date.now();
    await dev.waitForFunction((want) => document.querySelectorAll("article").length >= want, run === "dev-a" ? 3 : 5, { timeout: 1000, polling: 20 });
    console.log(`     ${run}: on the dev page ${Date.now() - t0} ms after the collector answered`);
  }
  // The app pages opened last; the dev page comes to the front as a person would look at it
  // (a background tab's animation frames, which clicks wait for, are throttled).
  await dev.bringToFront();
  const t1 = Date.now();
  let shown = await rows();
  check(shown.length === 5 && shown.filter((k) => k === "bad").length === 1, `shown: ${shown}`);

  // Filters narrow the list as they are typed.
  await dev.fill('input[name="test_id"]', "dev-b");
  shown = await rows();
  check(shown.length === 2 && shown.every((k) => k === "good"), `test id dev-b: ${shown}`);
  await dev.fill('input[name="test_id"]', "dev-a");
  await dev.selectOption('select[name="kind"]', "bad");
  shown = await rows();
  check(shown.length === 1 && shown[0] === "bad", `bad of dev-a: ${shown}`);
  await dev.selectOption('select[name="kind"]', "");
  await dev.fill('input[name="schema"]', "frontend_error");
  check((await rows()).length === 0, "a schema filter matched nothing expected");
  await dev.fill('input[name="schema"]', SEARCH);
  await dev.fill('input[name="label"]', "service=browser-tests");
  check((await rows()).length === 3, `label: ${await rows()}`);
  await dev.fill('input[name="label"]', "service=other");
  check((await rows()).length === 0, "label service=other matched");
  await dev.fill('input[name="label"]', "");
  const bad = (await (await fetch(`${collector.url}/v1/events?kind=bad&test_id=dev-a`)).json()).events[0];
  await dev.fill('input[name="event_id"]', bad.event.event_id);
  check((await rows()).length === 1, "event id filter");

  // The dead letter's error is shown on the line of the field it names, with the schema.
  const line = dev.locator('article.bad .line.error[data-path="/data/results_count"]');
  await line.waitFor({ state: "visible", timeout: 1000 });
  const text = await line.innerText();
  check(text.includes('"results_count": -1') && text.includes("-1 is less than the minimum of 0"), `error line: ${text}`);
  const why = await dev.locator("article.bad .errors").innerText();
  check(why === `schema_invalid against ${SEARCH}`, `dead letter header: ${why}`);
  if (process.env.SCREENSHOT) {
    await dev.fill('input[name="event_id"]', "");
    await dev.fill('input[name="test_id"]', "");
    await dev.fill('input[name="schema"]', "");
    await dev.screenshot({ path: process.env.SCREENSHOT });
    await dev.fill('input[name="event_id"]', bad.event.event_id);
  }

  console.log(`     filters checked in ${Date.now() - t1} ms`);
  // One click copies the record as JSON.
  await dev.locator("article.bad button.copy").click();
  const copied = JSON.parse(await dev.evaluate(() => navigator.clipboard.readText()));
  check(copied.code === "schema_invalid" && copied.event.event_id === bad.event.event_id, `copied: ${JSON.stringify(copied).slice(0, 200)}`);

  // Reset empties the collector's store and the page.
  await dev.click("#reset");
  await dev.waitForFunction(() => document.querySelectorAll("article").length === 0, null, { timeout: 2000, polling: 20 });
  const left = await (await fetch(`${collector.url}/v1/events?kind=all`)).json();
  check(left.count === 0, `after reset the store holds ${left.count}`);
  // And the page keeps showing what arrives after it.
  await dev.fill('input[name="event_id"]', "");
  await track(app2, "dev-c", 1);
  await dev.waitForFunction(() => document.querySelectorAll("article").length === 1, null, { timeout: 1000, polling: 20 });
  await context.close();
});

await test("the dev page: large dead letters start closed, filters read as the server does, odd records and URLs do not break it", async () => {
  await fetch(`${collector.url}/v1/events/reset`, { method: "POST" });
  const context = await chrome.newContext();
  const dev = await context.newPage();
  const errors = [];
  dev.on("pageerror", (e) => errors.push(e.message));
  // A filter in the URL (and a parameter that is not one, which once stopped the page).
  await dev.goto(`${collector.url}/?length=1&kind=bad`);
  await dev.waitForSelector("#status.live");
  check(await dev.inputValue('select[name="kind"]') === "bad", "the kind filter from the URL");
  await dev.selectOption('select[name="kind"]', "");
  const envelope = (query, extra = {}) => ({ event_id: crypto.randomUUID(), schema: SEARCH, data: { query, results_count: -1 }, created_at: new Date().toISOString(),
    context: { labels: { service: "a=b", team: " x " }, library: { name: "t", version: "0" }, anonymous_id: "a", test_id: "odd" }, ...extra });
  const big = Array.from({ length: 30 }, (_, i) => ({ ...envelope(`big-${i}`), data: { query: `big-${i}`, results_count: -1, filters: { blob: "y".repeat(25000) } } }));
  const batch = (events) => fetch(`${collector.url}/v1/batch`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sent_at: new Date().toISOString(), events }) });
  check((await batch(big)).status === 200, "the large batch");
  check((await batch([envelope("small"), "x", 7, { ...envelope("strlabels"), context: { labels: "web", library: { name: "t", version: "0" }, anonymous_id: "a" } }])).status === 200, "the odd batch");
  await dev.waitForFunction(() => document.querySelectorAll("article").length === 34, null, { timeout: 2000, polling: 20 });
  // 30 large dead letters, closed until clicked: no JSON built for them.
  const state = await dev.evaluate(() => ({
    lines: document.querySelectorAll("article .line").length,
    nodes: document.getElementsByTagName("*").length,
    large: [...document.querySelectorAll("article .meta")].filter((m) => m.textContent.includes("KB: click to show")).length,
  }));
  check(state.large === 30 && state.nodes < 3000, `large records: ${JSON.stringify(state)}`);
  const seventh = dev.locator("article", { hasText: big[7].event_id });
  await seventh.locator(".row").click();
  await seventh.locator('.line.error[data-path="/data/results_count"]').waitFor({ state: "visible", timeout: 1000 });
  // Labels as the server reads them: split at the first "=", nothing trimmed.
  await dev.fill('input[name="label"]', "service=a=b");
  const byLabel = await dev.evaluate(() => [...document.querySelectorAll("article")].filter((a) => !a.hidden).length);
  const server = (await (await fetch(`${collector.url}/v1/events?kind=all&label=${encodeURIComponent("service=a=b")}`)).json()).count;
  check(byLabel === server && server === 31, `label service=a=b: page ${byLabel}, server ${server}`);
  await dev.fill('input[name="label"]', "team= x ");
  check(await dev.evaluate(() => [...document.querySelectorAll("article")].filter((a) => !a.hidden).length) === 31, "label team= x ");
  await dev.fill('input[name="label"]', "");
  // Events that are not objects, and labels that are not one, are shown as such.
  const text = await dev.locator("#list").innerText();
  check((text.match(/\(the event is not a JSON object\)/g) || []).length === 2, "non-object events");
  check(!/0=w 1=e/.test(text), "a string of labels shown as characters");
  check(errors.length === 0, `page errors: ${errors}`);
  await context.close();
});

await test("a record whose body did not parse is shown as raw text, not a crash", async () => {
  await fetch(`${collector.url}/v1/events/reset`, { method: "POST" });
  const context = await chrome.newContext();
  const dev = await context.newPage();
  const errors = [];
  dev.on("pageerror", (e) => errors.push(e.message));
  await dev.goto(`${collector.url}/`);
  await dev.waitForSelector("#status.live");
  const answer = await fetch(`${collector.url}/v1/batch`, { method: "POST", body: '{"events": [<script>alert(1)</script>', headers: { "content-type": "application/json" } });
  check(answer.status === 400, `a malformed body: ${answer.status}`);
  await dev.waitForFunction(() => document.querySelectorAll("article.bad").length === 1, null, { timeout: 1000, polling: 20 });
  const shown = await dev.locator("article.bad").innerText();
  check(shown.includes("malformed") && shown.includes("(no event: the body did not parse)"), shown);
  check(shown.includes('{"events": [<script>alert(1)</script>'), `the raw body is not shown decoded: ${shown}`);
  check(await dev.evaluate(() => document.querySelectorAll("article script").length === 0), "the raw body became markup");
  check(errors.length === 0, `page errors: ${errors}`);
  await context.close();
});

await chrome.close();
await collector.stop();
collector.cleanup();
await pages.close();
await sleep(0);
finish();
