// Shared pieces of the browser tests: the collector process, a static server for the pages
// and the package, and Debian's Chromium driven by playwright-core.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { createServer as netServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, "../..");

export function freePort() {
  return new Promise((ok) => {
    const s = netServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(what, check, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The real collector (the `eventwire` binary), restartable on the same port. */
export class Collector {
  constructor(bin, pageOrigin, extra = []) {
    this.bin = bin;
    this.origin = pageOrigin;
    this.extra = extra;
    this.dir = mkdtempSync(join(tmpdir(), "eventwire-browser-"));
  }
  async start() {
    this.port ||= await freePort();
    this.proc = spawn(this.bin, [
      "collect", "--listen", `127.0.0.1:${this.port}`, "--schemas", join(ROOT, "schemas"),
      "--good", join(this.dir, "good.jsonl"), "--bad", join(this.dir, "bad.jsonl"),
      "--cors-origin", this.origin, ...this.extra,
    ], { stdio: ["ignore", "ignore", "inherit"] });
    await until("the collector", async () => {
      try { return (await fetch(`${this.url}/metrics`)).ok; } catch { return false; }
    });
  }
  get url() { return `http://127.0.0.1:${this.port}`; }
  async stop() {
    if (!this.proc) return;
    const p = this.proc;
    this.proc = null;
    p.kill("SIGKILL");
    await new Promise((r) => p.once("exit", r));
  }
  /** Good events, parsed. */
  good() {
    return this.lines("good.jsonl").map((l) => JSON.parse(l));
  }
  /** The whole lines of a sink file: a line the collector is still writing is left out. */
  lines(name) {
    const f = join(this.dir, name);
    const text = existsSync(f) ? readFileSync(f, "utf8") : "";
    return text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter(Boolean);
  }
  bad() {
    return this.lines("bad.jsonl").length;
  }
  async metric(name) {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    return text.split("\n").filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.split(" ").pop()), 0);
  }
  cleanup() { rmSync(this.dir, { recursive: true, force: true }); }
}

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/** Serves tests/browser/pages at /, the package at /pkg/ and built bundles at /build/. */
export async function pageServer(buildDir) {
  const pkg = join(ROOT, "sdk-wasm/npm");
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = path.startsWith("/pkg/") ? join(pkg, path.slice(5))
      : path.startsWith("/build/") ? join(buildDir, path.slice(7))
      : join(HERE, "pages", path === "/" ? "index.html" : path.slice(1));
    if (!existsSync(file)) { res.writeHead(404).end(); return; }
    const headers = { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-store" };
    // A policy without 'wasm-unsafe-eval': the page may not compile WebAssembly.
    if (path === "/csp.html") headers["content-security-policy"] = "script-src 'self' 'unsafe-inline'";
    res.writeHead(200, headers);
    res.end(readFileSync(file));
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage"],
  });
}
