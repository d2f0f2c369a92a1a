// Burst and size benchmark of browser SDKs, in one Chromium run:
//   node tests/browser/bench.mjs          (after scripts/build-npm.sh and npm ci in tests/browser)
//
// For eventwire, @snowplow/browser-tracker, @segment/analytics-next, posthog-js and
// @amplitude/analytics-browser: the gzipped size of a minimal init + track bundle (esbuild,
// same settings for all), and in a page: main-thread time of 10,000 track() calls (the loop,
// then until the main thread is idle again: `requestIdleCallback`), long tasks in the next 2 s, and how many of the
// 10,000 events a loopback sink has seen after 2 s and after 20 s.
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync, inflateRawSync } from "node:zlib";
import { HERE, ROOT, browser, freePort, pageServer, sleep } from "./lib.mjs";

const N = 10000;
const build = mkdtempSync(join(tmpdir(), "eventwire-bench-"));
const esbuild = join(HERE, "node_modules/.bin/esbuild");

// A sink for every protocol: any path, permissive CORS, gzip or not; counts the distinct
// event markers (`evt<seq>x`) it sees, per SDK.
const seen = new Map();
let current = "";
const sinkPort = await freePort();
const sink = createServer((req, res) => {
  const origin = req.headers.origin || "*";
  const cors = {
    "access-control-allow-origin": origin,
    "access-control-allow-credentials": "true",
    "access-control-allow-headers": req.headers["access-control-request-headers"] || "*",
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-expose-headers": "retry-after",
  };
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body = Buffer.concat(chunks);
    try {
      if (body[0] === 0x1f && body[1] === 0x8b) body = gunzipSync(body);
    } catch { /* not gzip after all */ }
    let text = body.toString("latin1");
    try { text += decodeURIComponent(text.replace(/\+/g, " ")); } catch { /* not a form */ }
    const set = seen.get(current) || new Set();
    for (const m of text.matchAll(/evt(\d+)x/g)) set.add(m[1]);
    seen.set(current, set);
    res.writeHead(200, { ...cors, "content-type": "application/json" });
    // eventwire counts an event as sent only on a batch answer for every event of the body.
    const events = (body.toString("latin1").match(/"event_id"/g) || []).length;
    res.end(req.url.includes("/v1/batch") && current === "eventwire" ? JSON.stringify({ accepted: events, duplicates: 0, rejected: [] }) : "{}");
  });
});
await new Promise((r) => sink.listen(sinkPort, "127.0.0.1", r));
const SINK = `http://127.0.0.1:${sinkPort}`;

const SCHEMA = "iglu:com.example.media/play/jsonschema/1-0-0";
// Each SDK: its minimal init + track (for the size), and its init + a `track(i)` for the burst.
const sdks = {
  eventwire: {
    init: `import { init } from "eventwire";
const t = await init({ endpoint: SINK, writeKey: "bench", wasm: "/build/core_bg.wasm" });
export const track = (i) => t.track({ schema: "${SCHEMA}", data: { media_id: "evt" + i + "x", position_s: i } });`,
  },
  "@snowplow/browser-tracker": {
    init: `import { newTracker, trackSelfDescribingEvent } from "@snowplow/browser-tracker";
newTracker("sp", SINK, { appId: "bench", eventMethod: "post", encodeBase64: false, stateStorageStrategy: "localStorage" });
export const track = (i) => trackSelfDescribingEvent({ event: { schema: "${SCHEMA}", data: { media_id: "evt" + i + "x", position_s: i } } });`,
  },
  "@segment/analytics-next": {
    init: `import { AnalyticsBrowser } from "@segment/analytics-next";
const host = SINK.replace("http://", "") + "/v1";
const analytics = AnalyticsBrowser.load({ writeKey: "bench", cdnSettings: { integrations: { "Segment.io": { apiKey: "bench", apiHost: host, protocol: "http" } } } }, { integrations: { "Segment.io": { apiHost: host, protocol: "http" } } });
await analytics;
export const track = (i) => analytics.track("media play", { media_id: "evt" + i + "x", position_s: i });`,
  },
  "posthog-js": {
    init: `import posthog from "posthog-js";
posthog.init("phc_bench", { api_host: SINK, autocapture: false, capture_pageview: false, capture_pageleave: false, disable_session_recording: true, advanced_disable_decide: true, disable_surveys: true, opt_out_useragent_filter: true });
export const track = (i) => posthog.capture("media play", { media_id: "evt" + i + "x", position_s: i });`,
  },
  "@amplitude/analytics-browser": {
    init: `import * as amplitude from "@amplitude/analytics-browser";
amplitude.init("bench", { serverUrl: SINK + "/2/httpapi", autocapture: false });
export const track = (i) => amplitude.track("media play", { media_id: "evt" + i + "x", position_s: i });`,
  },
};

function bundle(name, source, out) {
  const entry = join(HERE, `.bench-${out}.js`);
  writeFileSync(entry, `const SINK = window.SINK;\n${source}\nwindow.track = track;\nwindow.ready = true;\n`);
  try {
    execFileSync(esbuild, [entry, "--bundle", "--minify", "--format=esm", "--target=es2022", `--outfile=${join(build, out + ".js")}`, "--log-level=error"]);
  } finally {
    execFileSync("rm", ["-f", entry]);
  }
  return gzipSync(readFileSync(join(build, out + ".js")), { level: 9 }).length;
}

writeFileSync(join(build, "core_bg.wasm"), readFileSync(join(ROOT, "sdk-wasm/npm/dist/core_bg.wasm")));
const wasmGz = gzipSync(readFileSync(join(ROOT, "sdk-wasm/npm/dist/core_bg.wasm")), { level: 9 }).length;
const pages = await pageServer(build);
const chrome = await browser();
const rows = [];
let k = 0;
for (const [name, sdk] of Object.entries(sdks)) {
  const out = `sdk${k++}`;
  let size = bundle(name, sdk.init, out);
  if (name === "eventwire") size += wasmGz;
  writeFileSync(join(build, out + ".html"), `<!doctype html><meta charset="utf-8"><script>window.SINK=${JSON.stringify(SINK)}</script><script type="module" src="/build/${out}.js"></script>`);
  current = name;
  seen.set(name, new Set());
  const context = await chrome.newContext();
  const page = await context.newPage();
  let crashed = false;
  page.on("crash", () => (crashed = true));
  await page.goto(`${pages.url}/build/${out}.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 20000 });
  await sleep(500);
  const timing = await page.evaluate(async (n) => {
    let longTasks = 0;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) longTasks += e.duration; }).observe({ type: "longtask", buffered: false });
    const t0 = performance.now();
    for (let i = 0; i < n; i++) window.track(i);
    const calls = performance.now() - t0;
    // Idle: every task the burst queued (ours hands events to wasm 2,000 per task) has run.
    await new Promise((r) => requestIdleCallback(r));
    const free = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 2000));
    return { calls, free, longTasks };
  }, N).catch((e) => ({ error: String(e).split("\n")[0] }));
  const at2s = seen.get(name).size;
  await sleep(18000);
  const at20s = seen.get(name).size;
  rows.push({ name, size, ...timing, at2s, at20s, crashed });
  await context.close();
  console.error(`${name}: done`);
}
await chrome.close();
await pages.close();
sink.close();

const fmt = (ms) => (ms === undefined ? "—" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
console.log(`browser SDKs, ${N} track() calls in a row, Chromium ${chrome.version ? chrome.version() : ""}`);
console.log("");
console.log("| SDK | gzipped size, minimal init + track | main thread: the calls | until the main thread is idle | long tasks in the next 2 s | delivered after 2 s | after 20 s |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const err = r.error ? ` (${r.error})` : r.crashed ? " (tab crashed)" : "";
  console.log(`| ${r.name} | ${(r.size / 1024).toFixed(1)} KB | ${fmt(r.calls)} | ${fmt(r.free)} | ${fmt(r.longTasks)} | ${r.at2s} | ${r.at20s}${err} |`);
}
const ours = rows[0];
const peers = rows.slice(1);
const measured = peers.filter((r) => r.calls !== undefined);
const best = (list, f) => Math.min(...list.map(f));
console.log("");
console.log(`eventwire against the best peer on each measure, same run (>1: eventwire is better): size ${(best(peers, (r) => r.size) / ours.size).toFixed(2)}x, calls ${(best(measured, (r) => r.calls) / ours.calls).toFixed(1)}x, until idle ${(best(measured, (r) => r.free) / ours.free).toFixed(1)}x`);
