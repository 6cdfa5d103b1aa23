#!/usr/bin/env bash
# The size of the mobile library: builds libthudo_ffi.so for this host (x86_64 Linux) with the
# release profile (LTO, one codegen unit, opt-level "z", stripped, unwinding kept) and the
# workspace's link settings (.cargo/config.toml), then prints its size, gzip size and sections.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p thudo-ffi
LIB=target/release/libthudo_ffi.so
printf 'stripped: %s bytes\n' "$(stat -c %s "$LIB")"
printf 'gzip -9:  %s bytes\n' "$(gzip -9 -c "$LIB" | wc -c)"
size -A "$LIB" | awk 'NR > 2 && $2 > 50000 { printf "  %-20s %9d\n", $1, $2 }'
