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
# Kotlin: UniFFI makes an exception's `message` a dump of its fields ("reason=..."), empty for a
# variant without fields. Every thudo error exports its Rust `Display`, which the generated
# code already uses for `toString()`; make `message` that human sentence too.
KT="$OUT/kotlin/vn/hanoi/thudo/thudo_ffi.kt"
perl -0pi -e 's/override val message\n(\s*)get\(\) = "[^"\n]*"/override val message: String\n$1get() = toString()/g' "$KT"
if grep -q 'get() = "' "$KT"; then
  echo "bindings.sh: an exception message was not replaced; check the UniFFI Kotlin template" >&2
  exit 1
fi
echo "$LIB"
