#!/usr/bin/env bash
# thudo-core on the phones' CPUs: cross-builds for 64-bit ARM (aarch64-unknown-linux-gnu) and
# 32-bit ARM (armv7-unknown-linux-gnueabihf, the ABI of many cheap Android phones) with Debian's
# cross toolchains, runs the whole thudo-core test suite under qemu-user (linkers and runners in
# .cargo/config.toml), and prints the stripped size of the arm64 release library.
# Installs what it lacks (root: apt-get, rustup targets). About 10 minutes on 2 cores.
# The SIGKILL crash test re-executes its own binary, which qemu-user cannot do without binfmt
# registration; it runs natively in `bash scripts/test-all.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross qemu-user; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
for target in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  echo "==> thudo-core tests on $target (qemu-user)"
  log=$(mktemp)
  if ! cargo test -q -p thudo-core --target "$target" -- --skip kill_at_random_moments_loses_nothing >"$log" 2>&1; then
    cat "$log"; exit 1
  fi
  grep -E '^test result' "$log" | awk '{ passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }'
  rm -f "$log"
done
echo "==> arm64 release library"
cargo build -q --release -p thudo-ffi --target aarch64-unknown-linux-gnu
LIB=target/aarch64-unknown-linux-gnu/release/libthudo_ffi.so
printf 'arm64 libthudo_ffi.so stripped: %s bytes (gzip -9: %s)\n' "$(stat -c %s "$LIB")" "$(gzip -9 -c "$LIB" | wc -c)"
