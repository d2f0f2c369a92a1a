#!/usr/bin/env bash
# Builds the npm package `eventwire` in sdk-wasm/npm: the Rust core for wasm32 (nightly, std
# rebuilt with panic=immediate-abort for size), wasm-bindgen at the exact version of the
# wasm-bindgen crate, then wasm-opt -Oz. Output: sdk-wasm/npm/dist/{core.js,core_bg.wasm}.
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
command -v wasm-opt >/dev/null || { echo "wasm-opt is needed: apt-get install binaryen" >&2; exit 1; }

target=target/wasm-npm
RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none" \
  cargo +nightly build -p eventwire-wasm --target wasm32-unknown-unknown --profile wasm-release \
  --locked --target-dir "$target" -Zbuild-std=std,panic_abort
out=sdk-wasm/npm/dist
rm -rf "$out"
wasm-bindgen --target web --no-typescript --encode-into always --out-dir "$out" --out-name core \
  "$target/wasm32-unknown-unknown/wasm-release/eventwire_wasm.wasm"
wasm-opt -Oz --converge --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$out/core_bg.wasm" -o "$out/core_bg.wasm"
for f in "$out/core_bg.wasm" "$out/core.js" sdk-wasm/npm/index.js; do
  printf '%-28s %7d bytes, %6d gzipped\n' "$(basename "$f")" "$(wc -c <"$f")" "$(gzip -9c "$f" | wc -c)"
done
