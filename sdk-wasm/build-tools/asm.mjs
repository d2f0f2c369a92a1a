// Turns wasm2js's output into a module the package can load only when a Content-Security-Policy
// refuses to compile WebAssembly (scripts/build-npm.sh):
//   node asm.mjs IN.js OUT.js
// - the static import of the glue ('./core_bg.js') goes: the glue passes its imports in, so
//   the module exports one function, imports → exports, as WebAssembly.instantiate would;
// - memory.grow detaches the old buffer, as WebAssembly's does: the glue notices a grown
//   memory by its old views going empty, and would otherwise keep writing to the old copy.
import { readFileSync, writeFileSync } from "node:fs";

const [input, output] = process.argv.slice(2);
let js = readFileSync(input, "utf8");
const edit = (from, to) => {
  if (!js.includes(from)) throw new Error(`asm.mjs: wasm2js output changed: ${JSON.stringify(from)} not found`);
  js = js.replace(from, to);
};
edit("import * as $_core_bg_js from './core_bg.js';\n", "");
edit("   buffer = newBuffer;\n", "   structuredClone(buffer, { transfer: [buffer] });\n   buffer = newBuffer;\n");
const tail = js.indexOf("var retasmFunc = asmFunc(");
if (tail < 0) throw new Error("asm.mjs: wasm2js output changed: no retasmFunc");
js = js.slice(0, tail) + "export default asmFunc;\n";
writeFileSync(output, js);
