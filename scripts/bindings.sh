#!/usr/bin/env bash
# Builds the host library and generates the Kotlin and Swift bindings from it.
#   scripts/bindings.sh [debug|release]
# Outputs: target/<profile>/libthudo_ffi.so, build/bindings/kotlin/ (JVM),
# build/bindings/kotlin-android/ (UniFFI's Android options: the platform's object cleaner on
# Android 14+), build/bindings/swift/
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-debug}
FLAG=(); [ "$PROFILE" = release ] && FLAG=(--release)
cargo build -p thudo-ffi "${FLAG[@]}" >&2
cargo build -p thudo-ffi --features bindgen --bin uniffi-bindgen >&2
LIB="target/$PROFILE/libthudo_ffi.so"
[ "$(uname)" = Darwin ] && LIB="target/$PROFILE/libthudo_ffi.dylib"
OUT=build/bindings
rm -rf "$OUT"; mkdir -p "$OUT/kotlin" "$OUT/kotlin-android" "$OUT/swift"
generate() { # config language out-dir
  target/debug/uniffi-bindgen generate --library "$LIB" --config "$1" \
    --language "$2" --out-dir "$3" --no-format >&2
}
generate uniffi.toml kotlin "$OUT/kotlin"
generate uniffi.toml swift "$OUT/swift"
# The Android flavour: the same config with UniFFI's `android = true` in the Kotlin section.
ANDROID_CONFIG="$OUT/uniffi-android.toml"
# (awk, not sed: BSD sed on a Mac has no newline in replacements.)
awk '{ print } /^\[crates\.thudo_ffi\.bindings\.kotlin\]$/ { print "android = true" }' uniffi.toml > "$ANDROID_CONFIG"
grep -q '^android = true$' "$ANDROID_CONFIG"
generate "$ANDROID_CONFIG" kotlin "$OUT/kotlin-android"
# Kotlin: UniFFI makes an exception's `message` a dump of its fields ("reason=..."), empty for a
# variant without fields. Every thudo error exports its Rust `Display`, which the generated
# code already uses for `toString()`; make `message` that human sentence too.
for KT in "$OUT"/kotlin*/vn/hanoi/thudo/thudo_ffi.kt; do
  perl -0pi -e 's/override val message\n(\s*)get\(\) = "[^"\n]*"/override val message: String\n$1get() = toString()/g' "$KT"
  if grep -q 'get() = "' "$KT"; then
    echo "bindings.sh: an exception message was not replaced in $KT; check the UniFFI Kotlin template" >&2
    exit 1
  fi
done
echo "$LIB"
