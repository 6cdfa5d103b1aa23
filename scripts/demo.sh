#!/usr/bin/env bash
# README's main job: `thudo demo`, the whole story on this machine (a backend on loopback, a
# citizen's phone and a bus validator with their own encrypted vaults), with a summary table.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "Rust (rustup) is required: https://rustup.rs" >&2; exit 1; }
cargo build -q -p thudo-cli
exec target/debug/thudo demo "$@"
