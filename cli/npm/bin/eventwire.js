#!/usr/bin/env node
// `npx eventwire codegen|lint|validate`: the native binary's commands, the same Rust compiled
// to WebAssembly (wasm32-wasip1) and run by node's WASI, so the flags, messages and exit
// statuses are the native ones. The module sees the host's file system at the same paths
// (preopened at /) and starts in the shell's directory.
// (The global `process` only: importing "node:process" would create the stdio streams.)
import { readFile } from "node:fs/promises";
import { parse } from "node:path";

// node warns that WASI is experimental each time it loads; for a CLI that is noise.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === "string" ? rest[0] : rest[0] && rest[0].type;
  if (type === "ExperimentalWarning" && String(warning).includes("WASI")) return;
  return emitWarning.call(process, warning, ...rest);
};
const { WASI } = await import("node:wasi");
process.emitWarning = emitWarning;

let cwd;
try {
  cwd = process.cwd();
} catch (e) {
  console.error(`error: cannot read the current directory: ${e.message}`);
  process.exit(2);
}
const root = parse(cwd).root; // "/" (or "C:\\" on Windows)
const win = process.platform === "win32";

// The module reads and writes fds 0-2 itself and expects calls that wait (Rust takes
// EAGAIN for an error): node, or the parent that started it (npx), may have made a pipe or
// terminal non-blocking, and the flag belongs to the pipe, not the process. Make them wait.
for (const stream of [process.stdin, process.stdout, process.stderr]) {
  if (stream._handle && typeof stream._handle.setBlocking === "function") stream._handle.setBlocking(true);
}

const wasi = new WASI({
  version: "preview1",
  args: ["eventwire", ...process.argv.slice(2)],
  // The module changes to this directory before it reads its arguments' paths.
  env: { ...process.env, EVENTWIRE_WASI_CWD: "/" + (win ? cwd.slice(root.length).split("\\").join("/") : cwd.slice(1)) },
  preopens: { "/": root },
  returnOnExit: true,
});
const file = new URL("../dist/eventwire.wasm", import.meta.url);
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
const code = wasi.start(instance);
// Exit now: stdin's stream, made above, must not keep the process waiting.
process.exit(code);
