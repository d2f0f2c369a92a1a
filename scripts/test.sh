#!/usr/bin/env bash
# All of eventwire's checks, from a fresh machine: installs what is missing (idempotently),
# then runs formatting, lints, the wasm build and every test.
#
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# One-shot builds (CI is a fresh clone): incremental state would only cost time and disk
# (tens of GB for the generated Iglu Central crate).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Line tables only (file:line in backtraces, no variable info) for the test builds: full
# debug info made every test binary ~250 MB and the corpus crate's rlib 1 GB, and a CI
# machine ran out of disk in the middle of `cargo test` (os error 28). The README crate's
# test build and the fuzz build inherit this.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

step "toolchain"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
cargo --version

# The nightly toolchain: cargo-fuzz builds with it, the browser build needs its rust-src,
# and the Kafka-protocol broker below needs rustc 1.96.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# A real Kafka-protocol broker for the Kafka tests, the game days and the benchmarks (each
# starts and stops its own instance on a free loopback port, `testkit/src/broker.rs`):
# nisshi, the renamed tansu, whose 0.8 fixes what tansu 0.6 got wrong for a consumer group
# (docs/decisions.md). In-memory storage needs the `dynostore` feature; the build takes
# ~20 minutes on 2 cores, so it is only built when missing.
BROKER_VERSION=0.8.1
BROKER="${CARGO_HOME:-$HOME/.cargo}/bin/nisshi"
if [ ! -x "$BROKER" ] || ! "$BROKER" --version 2>/dev/null | grep -q "$BROKER_VERSION"; then
  step "installing nisshi $BROKER_VERSION (Kafka-protocol broker)"
  cargo +nightly install nisshi --locked --version "$BROKER_VERSION" --no-default-features --features dynostore
fi
export EVENTWIRE_BROKER="$BROKER"

# TypeScript for the check of codegen's TypeScript output (pinned in tests/ts/package-lock.json).
if [ ! -x tests/ts/node_modules/.bin/tsc ] || [ tests/ts/package-lock.json -nt tests/ts/node_modules/.package-lock.json ]; then
  step "installing TypeScript (npm ci in tests/ts)"
  npm ci --prefix tests/ts --no-audit --no-fund
fi

# cargo-fuzz, for the short fuzz runs below.
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  step "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# The browser package: wasm-bindgen-cli at the exact version of the wasm-bindgen crate
# (without --locked: its lockfile names a webpki-roots release the registry mirror may not
# have yet), std's source for the size-tuned nightly build, binaryen's wasm-opt and wasm2js
# (npm, pinned in sdk-wasm/build-tools) and Debian's Chromium for the tests.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
rustup component list --toolchain nightly --installed | grep -q '^rust-src' ||
  rustup component add rust-src --toolchain nightly
# Debian packages, with one `apt-get update` for all of them.
apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
if ! command -v chromium >/dev/null; then
  step "installing chromium (Debian)"
  apt_install chromium
fi
# Prometheus (Debian) for deploy/check.sh: promtool checks and unit-tests the alert rules,
# and a real Prometheus scrapes a collector with them loaded (jq and curl read its API);
# openssl makes the certificates of the Kafka TLS test.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v jq >/dev/null ||
  ! command -v curl >/dev/null || ! command -v openssl >/dev/null; then
  step "installing prometheus, jq, curl and openssl (Debian)"
  apt_install --no-install-recommends prometheus jq curl openssl
fi
if [ ! -x sdk-wasm/build-tools/node_modules/.bin/wasm2js ] || [ sdk-wasm/build-tools/package-lock.json -nt sdk-wasm/build-tools/node_modules/.package-lock.json ]; then
  step "installing binaryen (npm ci in sdk-wasm/build-tools)"
  npm ci --prefix sdk-wasm/build-tools --no-audit --no-fund
fi
if [ ! -x tests/browser/node_modules/.bin/playwright-core ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  step "installing the browser tests' packages (npm ci in tests/browser)"
  npm ci --prefix tests/browser --no-audit --no-fund
fi
# The packaging smoke test's fresh apps (Vite; webpack 5), pinned by their own lockfiles; the
# packed `eventwire` tarball is installed into them by the test itself, not saved.
for app in vite webpack; do
  if [ ! -x "tests/packaging/$app/node_modules/.bin/$app" ] || [ "tests/packaging/$app/package-lock.json" -nt "tests/packaging/$app/node_modules/.package-lock.json" ]; then
    step "installing the packaging test's $app app (npm ci in tests/packaging/$app)"
    npm ci --prefix "tests/packaging/$app" --no-audit --no-fund
  fi
done

# The official JSON Schema Test Suite (draft 4) for `cli/tests/json_schema_suite.rs`: the
# copy inside PyPI's jsonschema 4.23.0 source distribution (the registries reachable here
# have no other packaging of it).
SUITE=target/json-schema-test-suite
if [ ! -f "$SUITE/draft4/type.json" ]; then
  step "fetching the JSON Schema Test Suite (draft 4) from PyPI's jsonschema 4.23.0 sources"
  suite_tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: jsonschema==4.23.0 -d "$suite_tmp"
  tar xzf "$suite_tmp"/jsonschema-4.23.0.tar.gz -C "$suite_tmp"
  mkdir -p "$SUITE"
  cp -r "$suite_tmp"/jsonschema-4.23.0/json/tests/draft4 "$SUITE/"
  rm -rf "$suite_tmp"
fi

step "format"
cargo fmt --all -- --check

step "lints (native, all targets)"
# The corpus crate is 27 MB of generated code whose lints are allowed; it is built and
# tested below.
cargo clippy --workspace --all-targets --locked --exclude eventwire-iglu-corpus -- -D warnings

step "core for wasm32-unknown-unknown (no threads, no clock of its own)"
cargo clippy -p eventwire --target wasm32-unknown-unknown --no-default-features --locked -- -D warnings
# The npm CLI's build: the binary without its native commands, for WASI.
cargo clippy -p eventwire-cli --target wasm32-wasip1 --no-default-features --locked -- -D warnings
cargo build -p eventwire --target wasm32-unknown-unknown --no-default-features --features gzip --locked
cargo build -p eventwire-wasm --target wasm32-unknown-unknown --locked

step "tests"
log=$(mktemp)
trap 'rm -f "$log" "${fuzz_log:-}"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"

step "browser package: build (scripts/build-npm.sh) and test in Chromium (tests/browser)"
./scripts/build-npm.sh
cargo build -p eventwire-cli --locked
EVENTWIRE_BIN=target/debug/eventwire node tests/browser/run.mjs 2>&1 | tee -a "$log"
EVENTWIRE_BIN=target/debug/eventwire node tests/browser/dev.mjs 2>&1 | tee -a "$log"

step "browser package: npm pack, installed into fresh Vite and webpack apps, built, loaded in Chromium (tests/packaging)"
EVENTWIRE_BIN=target/debug/eventwire node tests/packaging/run.mjs 2>&1 | tee -a "$log"

step "npm CLI: build (scripts/build-npm-cli.sh) and test with npx, without cargo (tests/npm-cli)"
./scripts/build-npm-cli.sh
EVENTWIRE_BIN=target/debug/eventwire node tests/npm-cli/run.mjs 2>&1 | tee -a "$log"

step "alerts and dashboard (deploy/): promtool, and every metric they use in a real collector's /metrics"
EVENTWIRE_BIN=target/debug/eventwire ./deploy/check.sh 2>&1 | tee -a "$log"

# The game days (tests/game-days) ran above, inside `cargo test --workspace`: real
# collector and tracker processes, a fault-injecting proxy, 2 minutes of collector outage.

step "fuzz: ${FUZZ_SECONDS:=30} s per target (longer runs: docs/reliability.md)"
fuzz_log=$(mktemp)
for target in collector_batch spool_reader check_formats generated_round_trip; do
  mkdir -p "fuzz/corpus/$target"
  if ! (cd fuzz && cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$FUZZ_SECONDS" >"$fuzz_log" 2>&1); then
    cat "$fuzz_log"
    echo "fuzz target $target failed: the crashing input is in fuzz/artifacts/$target/"
    exit 1
  fi
  echo "$target: $(grep -E '^Done' "$fuzz_log")"
done
rm -f "$fuzz_log"

step "docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet --exclude eventwire-iglu-corpus

step "packages: every crate meant for crates.io packaged; the ones the registry lets us, built from the package alone"
# `cargo publish --dry-run` resolves each package against the registry, and the registry
# reachable here lacks jsonschema-macros 0.61 (the gap the workspace's [patch] covers), so
# the crates that need jsonschema's `arbitrary-precision` (validate, collector, process,
# cli) are packaged (files, metadata, no path-only dependency) but not built from their
# package here; the others are built from theirs. In dependency order, the workspace's
# crates standing in for each other as if on the registry.
cargo package --exclude-lockfile --allow-dirty --quiet \
  -p eventwire-schema -p eventwire-pii -p eventwire -p eventwire-codegen
cargo package --exclude-lockfile --allow-dirty --quiet --no-verify \
  -p eventwire-schema -p eventwire-pii -p eventwire -p eventwire-codegen \
  -p eventwire-validate -p eventwire-collector -p eventwire-process -p eventwire-cli
# The demo's schemas and the envelope schema travel in the packages (through links). (grep
# reads the whole list: with -q it would stop early and tar die of SIGPIPE under pipefail.)
tar tzf target/package/eventwire-cli-0.1.0.crate | grep 'demo-schemas/com.example.web/search/jsonschema/1-0-0' >/dev/null
tar tzf target/package/eventwire-validate-0.1.0.crate | grep 'envelope/1-1-0' >/dev/null

# What the run left on disk (CI machines have run out of it: os error 28).
du -sh target 2>/dev/null || true

# One closing line with the totals of every `cargo test` binary above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\nall checks passed\ntests: %d passed, %d failed\n", p, f }' "$log"
