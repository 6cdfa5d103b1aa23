#!/usr/bin/env bash
# Builds the host library and generates the Kotlin and Swift bindings from it.
#   scripts/bindings.sh [debug|release]
# Outputs: target/<profile>/libthudo_ffi.so, build/bindings/kotlin/, build/bindings/swift/
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-debug}
FLAG=(); [ "$PROFILE" = release ] && FLAG=(--release)
cargo build -p thudo-ffi "${FLAG[@]}" >&2
cargo build -p thudo-ffi --features bindgen --bin uniffi-bindgen >&2
LIB="target/$PROFILE/libthudo_ffi.so"
OUT=build/bindings
rm -rf "$OUT"; mkdir -p "$OUT/kotlin" "$OUT/swift"
for lang in kotlin swift; do
  target/debug/uniffi-bindgen generate --library "$LIB" --config uniffi.toml \
    --language "$lang" --out-dir "$OUT/$lang" --no-format >&2
done
echo "$LIB"
