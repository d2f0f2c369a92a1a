#!/usr/bin/env bash
# Builds the npm package @eventwire/cli in cli/npm: the `eventwire` binary without its
# native commands (features off: codegen, lint and validate are left), compiled for
# wasm32-wasip1 and run by node's WASI (cli/npm/bin/eventwire.js).
# Output: cli/npm/dist/eventwire.wasm.
#
#   ./scripts/build-npm-cli.sh        # then: npm pack ./cli/npm
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
cargo build -p eventwire-cli --target wasm32-wasip1 --no-default-features --profile wasi-release --locked
mkdir -p cli/npm/dist
cp target/wasm32-wasip1/wasi-release/eventwire.wasm cli/npm/dist/eventwire.wasm
ls -l cli/npm/dist/eventwire.wasm
