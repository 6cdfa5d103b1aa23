#!/usr/bin/env bash
# The size of the mobile library, built with the release profile (fat LTO, one codegen unit,
# opt-level "z", stripped, unwinding kept) and the workspace's link settings
# (.cargo/config.toml):
#   - x86_64 Linux (this host) with the built-in HTTPS client (feature rust-http, the default),
#   - x86_64 Linux without it (--no-default-features: what the mobile packages ship),
#   - with --arm64: aarch64 Linux without it, linked as the NDK links (lld, packed relocations),
#     the stand-in for Android's arm64-v8a (Debian's cross toolchain, installed when missing;
#     about 3 minutes more),
#   - with --breakdown: the bytes by crate of the last library built (unstripped copy in
#     target/size, read by scripts/size-breakdown.py).
# Prints sizes, gzip sizes and the largest sections. docs/performance.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
arm64=0 breakdown=0
for arg in "$@"; do
  case "$arg" in
    --arm64) arm64=1 ;;
    --breakdown) breakdown=1 ;;
    *) echo "usage: $0 [--arm64] [--breakdown]" >&2; exit 2 ;;
  esac
done

report() { # name library
  printf '%-34s %9s bytes stripped, %9s gzip -9\n' "$1" "$(stat -c %s "$2")" "$(gzip -9 -c "$2" | wc -c)"
}

cargo build --release -q -p thudo-ffi
report "x86_64, with rust-http" target/release/libthudo_ffi.so
cargo build --release -q -p thudo-ffi --no-default-features
LIB=target/release/libthudo_ffi.so NM=nm TARGET=()
report "x86_64, mobile (no rust-http)" "$LIB"

if [ "$arm64" = 1 ]; then
  if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
  fi
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
  # Linked as the Android NDK links: lld (Rust's own copy) with packed relative relocations
  # (Debian 12's GNU ld cannot pack them on aarch64), 16 KB pages. In its own target folder,
  # so scripts/test-arm.sh's builds stay warm.
  gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-B$gcc_ld -C link-arg=-fuse-ld=lld -C link-arg=-Wl,-z,pack-relative-relocs -C link-arg=-Wl,-z,max-page-size=16384"
  TARGET=(--target aarch64-unknown-linux-gnu)
  cargo build --release -q -p thudo-ffi --no-default-features "${TARGET[@]}" --target-dir target/size-arm64
  LIB=target/size-arm64/aarch64-unknown-linux-gnu/release/libthudo_ffi.so NM=aarch64-linux-gnu-nm
  report "arm64, mobile (no rust-http)" "$LIB"
fi
size -A "$LIB" | awk 'NR > 2 && $2 > 50000 { printf "  %-20s %9d\n", $1, $2 }'

if [ "$breakdown" = 1 ]; then
  # The same build with its symbols, in its own target folder (the stripped one stays warm).
  CARGO_PROFILE_RELEASE_STRIP=false cargo build --release -q -p thudo-ffi --no-default-features \
    "${TARGET[@]}" --target-dir target/size
  python3 scripts/size-breakdown.py "target/size/${TARGET[1]:-.}/release/libthudo_ffi.so" "$NM"
fi
