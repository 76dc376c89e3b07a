#!/usr/bin/env bash
# Quick start: build the accounting-sync plugin and run the daemon on the
# example configuration (nothing external needed). In another terminal:
#   cargo run -q -- send --config examples/quickstart/fieldhook.toml \
#     --source hcp-demo --body-file examples/quickstart/sample-job-completed.json
#   curl -s http://127.0.0.1:8080/_sink/accounting
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
  cargo build --release --target wasm32-wasip2 -p accounting-sync --target-dir target/guests
cp target/guests/wasm32-wasip2/release/accounting_sync.wasm examples/quickstart/plugins/accounting-sync/plugin.wasm
exec cargo run -p fieldhook -- serve --config examples/quickstart/fieldhook.toml
