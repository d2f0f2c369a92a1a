#!/usr/bin/env node
// `npx eventwire codegen|lint|validate`: the native binary's commands, the same Rust compiled
// to WebAssembly (wasm32-wasip1) and run by node's WASI, so the flags, messages and exit
// statuses are the native ones. The module sees the host's file system at the same paths
// (preopened at /) and starts in the shell's directory.
import { readFile } from "node:fs/promises";
import { parse } from "node:path";
import process from "node:process";

// node warns that WASI is experimental each time it loads; for a CLI that is noise.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === "string" ? rest[0] : rest[0] && rest[0].type;
  if (type === "ExperimentalWarning" && String(warning).includes("WASI")) return;
  return emitWarning.call(process, warning, ...rest);
};
const { WASI } = await import("node:wasi");
process.emitWarning = emitWarning;

const cwd = process.cwd();
const root = parse(cwd).root; // "/" (or "C:\\" on Windows)
const wasi = new WASI({
  version: "preview1",
  args: ["eventwire", ...process.argv.slice(2)],
  // The module changes to this directory before it reads its arguments' paths.
  env: { ...process.env, EVENTWIRE_WASI_CWD: "/" + cwd.slice(root.length).split("\\").join("/") },
  preopens: { "/": root },
  returnOnExit: true,
});
const file = new URL("../dist/eventwire.wasm", import.meta.url);
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
