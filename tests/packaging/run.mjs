// The npm package `eventwire` as an app gets it from the registry: `npm pack` of sdk-wasm/npm
// (its file list checked), the tarball installed into two fresh apps — Vite and webpack 5,
// pinned by their own lockfiles (tests/packaging/{vite,webpack}) — each built by its bundler
// for production, served over loopback and loaded in Debian's Chromium against the real
// collector: the event arrives, the wasm core is what ran (and, under a Content-Security-
// Policy without 'wasm-unsafe-eval', the JavaScript build of the core the bundler emitted).
// Run by scripts/test.sh after scripts/build-npm.sh and the browser tests:
//   EVENTWIRE_BIN=target/debug/eventwire node tests/packaging/run.mjs
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { Collector, browser, freePort, until } from "../browser/lib.mjs";
import { check, suite } from "../harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
const PKG = join(ROOT, "sdk-wasm/npm");
const bin = resolve(process.env.EVENTWIRE_BIN || join(ROOT, "target/debug/eventwire"));
const { test, finish } = suite("packaging");
const work = mkdtempSync(join(tmpdir(), "eventwire-packaging-"));
const npmEnv = { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };

// What the tarball holds: every file, and nothing else (no sources, no build tools' leftovers).
const EXPECTED = [
  "package.json", "README.md", "LICENSE-MIT", "LICENSE-APACHE",
  "index.js", "index.d.ts", "pii.d.ts", "testing.js", "testing.d.ts",
  "dist/core.js", "dist/core_bg.wasm", "dist/core_asm.js", "dist/pii.js",
];
const kb = (n) => `${(n / 1000).toFixed(1)} kB`;
const wasmBytes = readFileSync(join(PKG, "dist/core_bg.wasm"));

// Set by the first test, used by the others.
let tarball;

await test("npm pack: the tarball holds the modules, their types, the built wasm and the licenses, and nothing else", async () => {
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", work, PKG], { env: npmEnv, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const [packed] = JSON.parse(out);
  tarball = join(work, packed.filename);
  check(existsSync(tarball), `no tarball at ${tarball}`);
  const files = packed.files.map((f) => f.path).sort();
  const missing = EXPECTED.filter((f) => !files.includes(f));
  const extra = files.filter((f) => !EXPECTED.includes(f));
  check(missing.length === 0, `missing from the tarball: ${missing.join(", ")}`);
  check(extra.length === 0, `unexpected in the tarball: ${extra.join(", ")}`);
  check(!files.some((f) => /(^|\/)(src|node_modules)\//.test(f) || f.endsWith(".map")), `sources or build leftovers: ${files}`);
  // Every path package.json points at is in it.
  const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  const targets = [pkg.main, pkg.module, pkg.types];
  const walk = (v) => (typeof v === "string" ? targets.push(v) : v && Object.values(v).forEach(walk));
  walk(pkg.exports);
  for (const t of targets) check(files.includes(t.replace(/^\.\//, "")), `package.json points at ${t}, which is not in the tarball`);
  // What was packed is what was built, and the licenses are the repository's.
  const unpacked = join(work, "unpacked");
  mkdirSync(unpacked);
  execFileSync("tar", ["xzf", tarball, "-C", unpacked]);
  const wasm = readFileSync(join(unpacked, "package/dist/core_bg.wasm"));
  check(wasm.subarray(0, 4).toString("latin1") === "\0asm", "dist/core_bg.wasm is not WebAssembly");
  check(wasm.equals(wasmBytes), "the packed wasm is not sdk-wasm/npm/dist/core_bg.wasm");
  for (const f of ["LICENSE-MIT", "LICENSE-APACHE"]) {
    check(readFileSync(join(unpacked, "package", f)).equals(readFileSync(join(ROOT, f))), `the package's ${f} differs from the repository's`);
  }
  check(pkg.license === "MIT OR Apache-2.0", `license: ${pkg.license}`);
  console.log(`     ${packed.filename}: ${files.length} files, ${kb(packed.size)} packed, ${kb(packed.unpackedSize)} unpacked`);
});

// The apps, their builds, their servers and the collector.
const apps = {
  vite: {
    dir: join(HERE, "vite"),
    out: join(work, "vite-dist"),
    build: (out) => ["vite", ["build", "--outDir", out, "--emptyOutDir"]],
  },
  webpack: {
    dir: join(HERE, "webpack"),
    out: join(work, "webpack-dist"),
    stats: join(work, "webpack-stats.json"),
    build: (out) => ["webpack", ["--mode", "production", "--output-path", out, "--json", apps.webpack.stats]],
  },
};

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".txt": "text/plain" };

/** Serves `dir` (a bundler's output) on loopback; `?csp=1` on a page adds a policy without 'wasm-unsafe-eval'. */
async function serve(dir) {
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const path = decodeURIComponent(url.pathname);
    const file = resolve(dir, "." + (path.endsWith("/") ? path + "index.html" : path));
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404).end(); return; }
    const headers = { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" };
    if (url.searchParams.get("csp")) headers["content-security-policy"] = "script-src 'self'";
    res.writeHead(200, headers);
    res.end(readFileSync(file));
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

for (const app of Object.values(apps)) {
  mkdirSync(app.out);
  app.server = await serve(app.out);
}
check(existsSync(bin), `no collector binary at ${bin} (EVENTWIRE_BIN)`);
// Dev mode: the Vite app waits for its own event with eventwire/testing's expectEvents.
const collector = new Collector(bin, apps.vite.server.url, ["--cors-origin", apps.webpack.server.url, "--dev"]);
await collector.start();
const chrome = await browser();
const keys = mkdtempSync(join(tmpdir(), "eventwire-packaging-keys-"));
execFileSync(bin, ["pii", "keygen", "--public", join(keys, "k.pub"), "--private", join(keys, "k.key")], { stdio: "ignore" });
const publicKey = readFileSync(join(keys, "k.pub"), "utf8").trim();

function run(cmd, args, cwd) {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd, env: { ...npmEnv, NO_COLOR: "1" }, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  check(r.status === 0, `${cmd} ${args.join(" ")} (in ${relative(ROOT, cwd) || "."}): exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return { ...r, ms: Date.now() - t0 };
}

/** The app's pinned packages (npm ci, when missing or older than the lock), then the tarball, not saved. */
function install(app) {
  const lock = join(app.dir, "package-lock.json"), hidden = join(app.dir, "node_modules/.package-lock.json");
  check(!readFileSync(lock, "utf8").includes('"node_modules/eventwire"'), `${relative(ROOT, lock)} pins eventwire: the tarball must be installed at test time`);
  const times = [];
  const tool = join(app.dir, "node_modules/.bin", app.build("")[0]);
  if (!existsSync(tool) || !existsSync(hidden) || statSync(lock).mtimeMs > statSync(hidden).mtimeMs) {
    times.push(`npm ci ${(run("npm", ["ci"], app.dir).ms / 1000).toFixed(1)} s`);
  }
  rmSync(join(app.dir, "node_modules/eventwire"), { recursive: true, force: true });
  times.push(`tarball ${(run("npm", ["install", "--no-save", "--prefer-offline", tarball], app.dir).ms / 1000).toFixed(1)} s`);
  const installed = join(app.dir, "node_modules/eventwire");
  for (const f of EXPECTED.filter((f) => f !== "package.json")) {
    check(existsSync(join(installed, f)), `node_modules/eventwire/${f} is missing: the tarball did not install it`);
    check(readFileSync(join(installed, f)).equals(readFileSync(join(PKG, f))), `node_modules/eventwire/${f} is not the packed file`);
  }
  check(!readFileSync(lock, "utf8").includes('"node_modules/eventwire"'), "npm install --no-save wrote eventwire into the lockfile");
  return times;
}

/** The files of the build, by path relative to its directory. */
function listing(dir, base = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listing(join(dir, e.name), base) : [relative(base, join(dir, e.name))]);
}

/** Builds the app; checks the emitted wasm is the package's, and finds the emitted JavaScript build of the core. */
function build(name) {
  const app = apps[name];
  const [tool, args] = app.build(app.out);
  const r = run(join(app.dir, "node_modules/.bin", tool), args, app.dir);
  const files = listing(app.out);
  check(files.includes("index.html"), `${name}: no index.html in ${files}`);
  const wasm = files.filter((f) => f.endsWith(".wasm"));
  check(wasm.length === 1, `${name}: ${wasm.length} .wasm files emitted: ${files}`);
  check(readFileSync(join(app.out, wasm[0])).equals(wasmBytes), `${name}: the emitted ${wasm[0]} is not the package's core_bg.wasm`);
  // wasm2js's output (minified or not) keeps its top-level names.
  const asm = files.filter((f) => f.endsWith(".js") && readFileSync(join(app.out, f), "utf8").includes("base64ReverseLookup"));
  check(asm.length === 1, `${name}: ${asm.length} files hold the JavaScript build of the core: ${asm}`);
  app.wasm = "/" + wasm[0].split(sep).join("/");
  app.asm = "/" + asm[0].split(sep).join("/");
  const sizes = files.map((f) => `${f} ${kb(statSync(join(app.out, f)).size)}`).join(", ");
  return { r, sizes };
}

/**
 * Opens the built app with this run's query; resolves once it shows a result. Collects page
 * errors, console errors, failed requests and every response.
 */
async function load(name, query) {
  const app = apps[name];
  check(app.wasm && app.asm, `${name}: not built (its build test failed or was left out)`);
  const context = await chrome.newContext();
  // Counts the wasm instances the page makes (the JavaScript build of the core makes none).
  await context.addInitScript(() => {
    const instantiate = WebAssembly.instantiate;
    window.__wasmInstances = 0;
    WebAssembly.instantiate = (...a) => instantiate.apply(WebAssembly, a).then((r) => (window.__wasmInstances++, r));
  });
  const page = await context.newPage();
  const seen = { errors: [], failed: [], responses: [] };
  page.on("pageerror", (e) => seen.errors.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && seen.errors.push(`console error: ${m.text()}`));
  page.on("requestfailed", (r) => seen.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("response", (r) => {
    seen.responses.push(r);
    if (r.status() >= 400) seen.failed.push(`${r.request().method()} ${r.url()}: HTTP ${r.status()}`);
  });
  const params = new URLSearchParams({ endpoint: collector.url, ...query });
  await page.goto(`${app.server.url}/?${params}`);
  await page.waitForFunction(() => document.getElementById("result")?.dataset.state !== "loading", null, { timeout: 30000 });
  const result = { state: await page.getAttribute("#result", "data-state"), text: await page.textContent("#result"), wasmInstances: await page.evaluate(() => window.__wasmInstances) };
  return { context, page, seen, result };
}

const path = (r) => new URL(r.url()).pathname;

/** The checks every load shares: shown done, nothing failed, and which core ran. */
function checkLoad(name, { seen, result }, core) {
  const app = apps[name];
  check(seen.errors.length === 0, `${name}: ${seen.errors.join("\n")}`);
  check(seen.failed.length === 0, `${name}: failed requests:\n${seen.failed.join("\n")}`);
  check(result.state === "done", `${name}: the page shows ${JSON.stringify(result.text)}`);
  const wasm = seen.responses.filter((r) => path(r) === app.wasm);
  const asm = seen.responses.filter((r) => path(r) === app.asm);
  check(wasm.length === 1 && wasm[0].status() === 200 && wasm[0].headers()["content-type"] === "application/wasm",
    `${name}: the page fetched ${app.wasm} ${wasm.length} times (${wasm.map((r) => r.status())})`);
  if (core === "wasm") {
    check(result.wasmInstances === 1, `${name}: ${result.wasmInstances} wasm instances`);
    check(asm.length === 0, `${name}: the JavaScript build of the core (${app.asm}) was fetched too`);
  } else {
    check(result.wasmInstances === 0, `${name}: ${result.wasmInstances} wasm instances under the policy`);
    check(asm.length === 1 && asm[0].status() === 200, `${name}: the JavaScript build of the core (${app.asm}) was not loaded`);
  }
}

/** Good events of a test id, and the dead letters, now. */
const goodOf = (run) => collector.good().filter((e) => e.context && e.context.test_id === run);

for (const name of Object.keys(apps)) {
  await test(`${name}: npm ci of the fresh app, the tarball installed, a production build emits the package's wasm`, async () => {
    check(tarball, "no tarball (the pack test failed)");
    const times = install(apps[name]);
    const { r, sizes } = build(name);
    if (name === "vite") {
      check(r.stderr.trim() === "", `vite warned:\n${r.stderr}`);
    } else {
      const stats = JSON.parse(readFileSync(apps.webpack.stats, "utf8"));
      check(stats.errors.length === 0, `webpack errors: ${JSON.stringify(stats.errors, null, 1)}`);
      // No warning at all: @hpke/core (bundled into dist/pii.js) falls back to node's
      // `import("crypto")` where there is no WebCrypto; the package's `browser` field maps
      // it to nothing, so webpack 5 does not warn that it cannot resolve it.
      const warnings = stats.warnings;
      check(warnings.length === 0, `webpack warned:\n${warnings.map((w) => `${w.moduleName}: ${w.message}`).join("\n\n")}`);
    }
    console.log(`     ${times.join(", ")}, ${name} build ${(r.ms / 1000).toFixed(1)} s: ${sizes}`);
  });
}

await test("vite: the built app loads the wasm core, sends its event, and eventwire/testing sees it arrive", async () => {
  const run = `vite-${Date.now()}`;
  const loaded = await load("vite", { run });
  try {
    checkLoad("vite", loaded, "wasm");
    const events = goodOf(run);
    check(events.length === 1, `${events.length} events of ${run} in the good sink`);
    const [e] = events;
    check(e.data.query === run && e.context.labels.service === "packaging-vite" && e.context.library.name === "eventwire-js", JSON.stringify(e));
    check(loaded.result.text === `delivered ${e.event_id}`, `the page shows ${JSON.stringify(loaded.result.text)}; the collector has ${e.event_id}`);
    check(collector.bad() === 0, `${collector.bad()} dead letters`);
  } finally {
    await loaded.context.close();
  }
});

await test("webpack: the built app loads the wasm core, seals the personal data with eventwire/pii, and its event arrives", async () => {
  const run = `webpack-${Date.now()}`;
  const loaded = await load("webpack", { run, key: publicKey });
  try {
    checkLoad("webpack", loaded, "wasm");
    check(loaded.result.text === "sent 1, rejected 0", `the page shows ${JSON.stringify(loaded.result.text)}`);
    const events = goodOf(run);
    check(events.length === 1, `${events.length} events of ${run} in the good sink`);
    const [e] = events;
    check(e.schema === "iglu:com.example.shop/customer/jsonschema/1-0-0" && e.data.customer_id === "C-1000" && e.context.labels.service === "packaging-webpack", JSON.stringify(e));
    check(e.data.email.startsWith("ew1.") && e.data.name.startsWith("ew1.") && !JSON.stringify(e).includes(run + "@"), `not sealed: ${JSON.stringify(e.data)}`);
    check(collector.bad() === 0, `${collector.bad()} dead letters`);
  } finally {
    await loaded.context.close();
  }
});

for (const name of Object.keys(apps)) {
  await test(`${name}: under a Content-Security-Policy without 'wasm-unsafe-eval', the app loads the JavaScript build of the core the bundler emitted, and delivers`, async () => {
    const run = `${name}-csp-${Date.now()}`;
    const loaded = await load(name, { run, key: publicKey, csp: "1" });
    try {
      checkLoad(name, loaded, "asm");
      await until(`the event of ${run}`, () => goodOf(run).length === 1, 10000);
      check(collector.bad() === 0, `${collector.bad()} dead letters`);
    } finally {
      await loaded.context.close();
    }
  });
}

await chrome.close();
await collector.stop();
collector.cleanup();
for (const app of Object.values(apps)) await app.server.close();
rmSync(work, { recursive: true, force: true });
rmSync(keys, { recursive: true, force: true });
finish();
