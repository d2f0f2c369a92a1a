#!/usr/bin/env bash
# Builds the npm package `eventwire` in sdk-wasm/npm: the Rust core for wasm32 (nightly, std
# rebuilt with panic=immediate-abort for size), wasm-bindgen at the exact version of the
# wasm-bindgen crate, then binaryen's wasm-opt -Oz, and the same wasm compiled to JavaScript
# with binaryen's wasm2js for pages whose Content-Security-Policy refuses WebAssembly, and
# the subpath eventwire/pii bundled with @hpke/core by esbuild.
# Output: sdk-wasm/npm/dist/{core.js,core_bg.wasm,core_asm.js,pii.js}.
#
#   ./scripts/build-npm.sh            # then: npm pack ./sdk-wasm/npm
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
  echo "wasm-bindgen-cli $want is needed (the version of the wasm-bindgen crate in Cargo.lock):" >&2
  echo "  cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
# binaryen from npm (pinned in sdk-wasm/build-tools): Debian's (108) cannot turn this wasm
# into JavaScript.
tools=sdk-wasm/build-tools
if [ ! -x "$tools/node_modules/.bin/wasm2js" ] || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
  npm ci --prefix "$tools" --no-audit --no-fund
fi
bin="$tools/node_modules/.bin"

target=target/wasm-npm
# No reference types, no multi-value: wasm2js supports neither (and the build is smaller).
RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none -Ctarget-feature=-reference-types,-multivalue" \
  cargo +nightly build -p eventwire-wasm --target wasm32-unknown-unknown --profile wasm-release \
  --locked --target-dir "$target" -Zbuild-std=std,panic_abort
out=sdk-wasm/npm/dist
rm -rf "$out"
wasm-bindgen --target web --no-typescript --encode-into always --out-dir "$out" --out-name core \
  "$target/wasm32-unknown-unknown/wasm-release/eventwire_wasm.wasm"
features="--enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals"
# -Oz then -O3: the smallest gzipped file of the pass orders tried (144 bytes under -Oz
# alone, measured with this core; -Oz's raw bytes are fewer but compress worse).
# --low-memory-unused: Rust puts the 1 MiB
# stack first in memory, so the low 1 KiB is the bottom of the stack, reached only at an
# overflow; binaryen may then fold pointer offsets (docs/decisions.md).
"$bin/wasm-opt" -Oz -O3 --converge --low-memory-unused --strip-debug --strip-producers $features \
  "$out/core_bg.wasm" -o "$out/core_bg.wasm"
# The glue's own loader is kept; these two let index.js start the JavaScript build instead.
echo 'export { __wbg_get_imports as imports, __wbg_finalize_init as finish };' >>"$out/core.js"
# The same wasm as JavaScript, for a Content-Security-Policy without 'wasm-unsafe-eval'.
"$bin/wasm-opt" $features --llvm-nontrapping-fptoint-lowering --signext-lowering \
  --llvm-memory-copy-fill-lowering "$out/core_bg.wasm" -o "$target/lowered.wasm"
"$bin/wasm2js" -O2 "$target/lowered.wasm" -o "$target/core_asm.js"
node "$tools/asm.mjs" "$target/core_asm.js" "$out/core_asm.js"
# The opt-in subpath `eventwire/pii`: its source and @hpke/core (pinned in build-tools) in one
# module, so that it loads without a bundler too; its license travels with it.
hpke_license=$(sed 's/^/ * /' "$tools/node_modules/@hpke/core/LICENSE")
NODE_PATH="$tools/node_modules" "$bin/esbuild" sdk-wasm/npm/src/pii.js --bundle --format=esm --minify \
  --target=es2020 --log-level=warning --outfile="$out/pii.js" \
  --banner:js="/*! eventwire/pii bundles @hpke/core $(node -p "require('./$tools/node_modules/@hpke/core/package.json').version") (https://github.com/dajiaji/hpke-js):
$hpke_license
 */"
for f in "$out/core_bg.wasm" "$out/core.js" "$out/core_asm.js" sdk-wasm/npm/index.js "$out/pii.js"; do
  printf '%-28s %7d bytes, %6d gzipped\n' "$(basename "$f")" "$(wc -c <"$f")" "$(gzip -9c "$f" | wc -c)"
done
