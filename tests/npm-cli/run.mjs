// @eventwire/cli as a web developer gets it: the packed tarball installed by npm into a
// fresh directory whose PATH has no cargo, then `npx eventwire codegen|lint|validate`
// compared with the native binary, command by command (same output files, same stdout,
// same exit status). Run by scripts/test.sh after scripts/build-npm-cli.sh and
// scripts/build-npm.sh:
//   EVENTWIRE_BIN=target/debug/eventwire node tests/npm-cli/run.mjs
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { check, suite } from "../harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
const native = resolve(process.env.EVENTWIRE_BIN || join(ROOT, "target/debug/eventwire"));
const corpus = resolve(ROOT, "../shared/corpora/iglu-central/schemas");
const tsc = join(ROOT, "tests/ts/node_modules/.bin/tsc");
const { test, finish } = suite("npm cli");

// A PATH without cargo or rustc: what a web developer's machine has.
const path = process.env.PATH.split(delimiter)
  .filter((d) => !existsSync(join(d, "cargo")) && !existsSync(join(d, "rustc")))
  .join(delimiter);
const env = { ...process.env, PATH: path, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false" };
delete env.CARGO_HOME;
delete env.RUSTUP_HOME;

const work = mkdtempSync(join(tmpdir(), "eventwire-npx-"));
const app = join(work, "app");
mkdirSync(join(app, "src"), { recursive: true });

/** Runs `cmd args` in the app directory with the web developer's PATH. */
function run(cmd, args, input) {
  const r = spawnSync(cmd, args, { cwd: app, env, input, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const npx = (args, input) => run("npx", ["--no", "--", "eventwire", ...args], input);
const nat = (args, input) => run(native, args, input);

function duBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? duBytes(p) : statSync(p).size;
  }
  return n;
}

function same(what, a, b) {
  check(a.status === b.status, `${what}: exit ${a.status} under npx, ${b.status} natively\n${a.stderr}\n${b.stderr}`);
  check(a.stdout === b.stdout, `${what}: stdout differs\n--- npx\n${a.stdout}\n--- native\n${b.stdout}`);
  check(a.stderr === b.stderr, `${what}: stderr differs\n--- npx\n${a.stderr}\n--- native\n${b.stderr}`);
}

await test("the packed tarball installs with npm where there is no cargo", async () => {
  check(spawnSync("cargo", ["--version"], { env }).error?.code === "ENOENT", "cargo is still on the test's PATH");
  for (const pkg of ["cli/npm", "sdk-wasm/npm"]) {
    execFileSync("npm", ["pack", "--silent", "--pack-destination", work, join(ROOT, pkg)], { env, stdio: ["ignore", "ignore", "inherit"] });
  }
  const tarballs = readdirSync(work).filter((f) => f.endsWith(".tgz"));
  check(tarballs.length === 2, `packed: ${tarballs}`);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", ...tarballs.map((t) => join(work, t))], { cwd: app, env, stdio: ["ignore", "ignore", "inherit"] });
  const installed = join(app, "node_modules/@eventwire/cli");
  check(existsSync(join(installed, "dist/eventwire.wasm")), "the wasm is not in the installed package");
  console.log(`     @eventwire/cli installed: ${(duBytes(installed) / 1e6).toFixed(1)} MB (tarball ${(statSync(join(work, tarballs.find((t) => t.includes("cli")))).size / 1e6).toFixed(1)} MB)`);
  const help = npx(["--help"]);
  check(help.status === 0 && /codegen/.test(help.stdout) && /native binary/.test(help.stdout), `help: ${help.stdout}${help.stderr}`);
  check(!/ExperimentalWarning/.test(help.stderr), `node's WASI warning shows: ${help.stderr}`);
});

await test("codegen --lang ts under npx writes the native binary's file; tsc --strict compiles a usage of it", async () => {
  cpSync(join(ROOT, "schemas"), join(app, "schemas"), { recursive: true });
  const args = (out) => ["codegen", "--schemas", "schemas", "--lang", "ts", "--out", out];
  const a = npx(args("src/events.ts")), b = nat(args("native-events.ts"));
  check(a.status === 0 && b.status === 0, `codegen: ${a.status} ${a.stderr} / ${b.status} ${b.stderr}`);
  check(a.stderr === "wrote TypeScript types to src/events.ts\n", a.stderr);
  check(readFileSync(join(app, "src/events.ts"), "utf8") === readFileSync(join(app, "native-events.ts"), "utf8"), "the TypeScript differs from the native binary's");
  writeFileSync(join(app, "src/usage.ts"), `import { init } from "eventwire";
import type { SelfDescribing } from "./events";

const tracker = await init<SelfDescribing>({ endpoint: "http://127.0.0.1:8080", testId: "t" });
tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "shoes", results_count: 3 } });
// @ts-expect-error results_count is an integer, not a string
tracker.track({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "shoes", results_count: "3" } });
// @ts-expect-error no such schema
tracker.track({ schema: "iglu:com.example.web/nope/jsonschema/1-0-0", data: {} });
`);
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: "ES2022", module: "ES2022", moduleResolution: "bundler", lib: ["ES2022", "DOM"], skipLibCheck: false },
    files: ["src/usage.ts"],
  }));
  const t = run(tsc, ["-p", "tsconfig.json"]);
  check(t.status === 0, `tsc --strict: ${t.stdout}${t.stderr}`);
  // And with a mistake the check is real: the same file without the expect-error lines fails.
  writeFileSync(join(app, "src/usage.ts"), readFileSync(join(app, "src/usage.ts"), "utf8").replace(/\/\/ @ts-expect-error.*\n/g, ""));
  const wrong = run(tsc, ["-p", "tsconfig.json"]);
  check(wrong.status !== 0 && /results_count/.test(wrong.stdout), `tsc accepted a wrong event: ${wrong.stdout}`);
});

await test("codegen --lang rust is the native binary's, and says so (exit 2, nothing written)", async () => {
  // typify reports some schemas it cannot use by panicking, which only the native binary
  // can catch (WebAssembly aborts): the npm build leaves Rust to it.
  const a = npx(["codegen", "--schemas", "schemas", "--lang", "rust", "--out", "events.rs"]);
  check(a.status === 2 && a.stderr === "error: codegen --lang rust runs in the native binary (cargo install eventwire-cli); this build generates --lang ts\n", `${a.status} ${a.stderr}`);
  check(!existsSync(join(app, "events.rs")), "a Rust file was written");
  const help = npx(["codegen", "--help"]);
  check(/rust: in the native binary/.test(help.stdout), help.stdout);
});

await test("output through a pipe and input from a slow pipe, as the native binary (non-blocking stdio)", async () => {
  // More than a pipe holds (64 KiB) to a reader that is slower than the writer, and input
  // that arrives after the command started: a non-blocking descriptor gave EAGAIN here.
  const sh = (cmd) => spawnSync("sh", ["-c", cmd], { cwd: app, env, encoding: "utf8", maxBuffer: 64 << 20 });
  const piped = sh(`npx --no -- eventwire codegen --schemas ${JSON.stringify(corpus)} --lang ts --out - | (sleep 0.3; cat) > piped.ts; echo "status $?"`);
  check(/status 0/.test(piped.stdout) && !/panicked/.test(piped.stderr), `${piped.stdout}${piped.stderr}`);
  nat(["codegen", "--schemas", corpus, "--lang", "ts", "--out", "direct.ts"]);
  const [p, d] = [readFileSync(join(app, "piped.ts"), "utf8"), readFileSync(join(app, "direct.ts"), "utf8")];
  check(p.length > 65536 && p === d, `piped ${p.length} bytes, the native file ${d.length}`);
  const line = JSON.stringify({ schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "ok", results_count: 1 } });
  const slow = (bin) => sh(`(sleep 0.5; printf '%s\\n{bad\\n' '${line}') | ${bin} validate --schemas schemas -; echo "status $?"`);
  const [a, b] = [slow("npx --no -- eventwire"), slow(JSON.stringify(native))];
  check(a.stdout === b.stdout && a.stderr === b.stderr && /1 valid, 1 invalid\nstatus 1/.test(a.stdout), `npx:\n${a.stdout}${a.stderr}\nnative:\n${b.stdout}${b.stderr}`);
});

await test("lint of a registry with a breaking change: exit 1, the native binary's report", async () => {
  const reg = join(app, "registry");
  cpSync(join(ROOT, "schemas"), reg, { recursive: true });
  const search = JSON.parse(readFileSync(join(reg, "com.example.web/search/jsonschema/1-0-0"), "utf8"));
  // 1-0-1 must accept every 1-0-0 event (an ADDITION); a new required field breaks that.
  search.self.version = "1-0-1";
  search.properties.locale = { type: "string" };
  search.required = [...(search.required || []), "locale"];
  writeFileSync(join(reg, "com.example.web/search/jsonschema/1-0-1"), JSON.stringify(search, null, 2));
  const a = npx(["lint", "--schemas", "registry"]), b = nat(["lint", "--schemas", "registry"]);
  same("lint", a, b);
  check(a.status === 1 && /error/.test(a.stdout) && /locale/.test(a.stdout), `lint: ${a.status}\n${a.stdout}`);
  const clean = npx(["lint", "--schemas", "schemas"]);
  check(clean.status === 0, `lint of the clean registry: ${clean.status}\n${clean.stdout}`);
  same("lint --uniques on a marked field", npx(["lint", "--schemas", "schemas", "--uniques", "com.example.shop/customer:/data/email"]),
    nat(["lint", "--schemas", "schemas", "--uniques", "com.example.shop/customer:/data/email"]));
});

await test("validate a file of events: exit 1 on a bad line, the native binary's report; stdin too", async () => {
  const lines = [
    { schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "ok", results_count: 1 } },
    { schema: "iglu:com.example.web/search/jsonschema/1-0-0", data: { query: "bad", results_count: -1 } },
    { schema: "iglu:com.example.web/nope/jsonschema/1-0-0", data: {} },
  ].map((l) => JSON.stringify(l)).join("\n") + "\n{not json\n";
  writeFileSync(join(app, "events.jsonl"), lines);
  const a = npx(["validate", "--schemas", "schemas", "events.jsonl"]), b = nat(["validate", "--schemas", "schemas", "events.jsonl"]);
  same("validate", a, b);
  check(a.status === 1 && /^1 valid, 3 invalid$/m.test(a.stdout) && /line 2: schema_invalid/.test(a.stdout), `validate: ${a.status}\n${a.stdout}`);
  same("validate -", npx(["validate", "--schemas", "schemas", "-"], lines), nat(["validate", "--schemas", "schemas", "-"], lines));
  writeFileSync(join(app, "good.jsonl"), lines.split("\n")[0] + "\n");
  const good = npx(["validate", "--schemas", "schemas", "good.jsonl"]);
  check(good.status === 0 && good.stdout === "1 valid, 0 invalid\n", `a good file: ${good.status} ${good.stdout}`);
});

await test("what the npm build does not do says so, with the native exit statuses", async () => {
  const collect = npx(["collect"]);
  check(collect.status === 2 && /unrecognized subcommand 'collect'/.test(collect.stderr), `collect: ${collect.status} ${collect.stderr}`);
  const http = npx(["validate", "--schemas", "https://schemas.example.com", "events.jsonl"]);
  check(http.status === 2 && /registries over HTTP are in the native binary/.test(http.stderr), `http registry: ${http.status} ${http.stderr}`);
  // I/O errors: the same words and status (the OS error number, which is the platform's —
  // WASI's ENOENT is 44, Linux's 2 — is left out by both).
  mkdirSync(join(app, "a-directory"), { recursive: true });
  for (const args of [["validate", "--schemas", "schemas", "missing.jsonl"], ["validate", "--schemas", "schemas", "a-directory"],
    ["validate", "--schemas", "nowhere", "events.jsonl"], ["lint", "--schemas", "nowhere"], ["codegen", "--schemas", "nowhere", "--lang", "ts", "--out", "x.ts"],
    ["codegen", "--schemas", "schemas", "--lang", "ts", "--out", "a-directory"], ["codegen", "--schemas", "schemas", "--lang", "ts", "--out", "new/dirs/x.ts"]]) {
    const a = npx(args), b = nat(args);
    same(args.join(" "), a, b);
    check(!/os error/.test(a.stderr), `${args.join(" ")}: ${a.status} ${a.stderr}`);
  }
});

await test("codegen over the 660 Iglu Central schemas: npx against the native binary, same run", async () => {
  check(existsSync(corpus), `the corpus is missing at ${corpus}`);
  const time = (f) => { const t0 = process.hrtime.bigint(); const r = f(); return [r, Number(process.hrtime.bigint() - t0) / 1e6]; };
  const [a, ta] = time(() => npx(["codegen", "--schemas", corpus, "--lang", "ts", "--out", "iglu.ts"]));
  const [b, tb] = time(() => nat(["codegen", "--schemas", corpus, "--lang", "ts", "--out", "iglu-native.ts"]));
  check(a.status === b.status && a.stderr.replace("iglu.ts", "X") === b.stderr.replace("iglu-native.ts", "X"), `${a.stderr}\n${b.stderr}`);
  check(readFileSync(join(app, "iglu.ts"), "utf8") === readFileSync(join(app, "iglu-native.ts"), "utf8"), "the corpus' TypeScript differs");
  // The module alone: node started on the installed launcher, without npm's own start.
  const launcher = join(app, "node_modules/@eventwire/cli/bin/eventwire.js");
  const [c, tc] = time(() => run(process.execPath, [launcher, "codegen", "--schemas", corpus, "--lang", "ts", "--out", "iglu-node.ts"]));
  check(c.status === 0, c.stderr);
  const schemas = execFileSync("find", [corpus, "-type", "f"], { encoding: "utf8" }).trim().split("\n").length;
  console.log(`     ${schemas} schemas: npx ${ta.toFixed(0)} ms, node + the module ${tc.toFixed(0)} ms, native ${tb.toFixed(0)} ms (${native}): ${(ta / tb).toFixed(1)}× and ${(tc / tb).toFixed(1)}×`);
});

finish();
