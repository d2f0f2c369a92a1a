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

const bin = process.env.EVENTWIRE_BIN || join(ROOT, "target/debug/eventwire");
const pages = await pageServer(mkdtempSync(join(tmpdir(), "eventwire-build-")));
const collector = new Collector(bin, pages.url, ["--dev"]);
await collector.start();
const chrome = await browser();
let passed = 0, failed = 0;

async function test(name, fn) {
  if (process.env.BROWSER_TEST && !name.includes(process.env.BROWSER_TEST)) return;
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
console.log(`\ntest result: ${failed ? "FAILED" : "ok"}. ${passed} passed; ${failed} failed (browser, dev mode)`);
process.exit(failed ? 1 : 0);
