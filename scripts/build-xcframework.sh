#!/usr/bin/env bash
# Builds ios/ThudoFFI.xcframework (iOS devices, iOS simulators on arm64 and x86_64, macOS) and
# the Swift bindings for the package's binary target. Needs macOS with Xcode; it cannot run in
# this repository's CI (Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname)" = Darwin ] || { echo "build-xcframework.sh needs macOS and Xcode" >&2; exit 1; }
TARGETS="aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin"
rustup target add $TARGETS
# Without the built-in HTTPS client (about 0.9 MB per slice): apps sync through URLSession
# (URLSessionSyncTransport). THUDO_RUST_HTTP=1 keeps it, for apps that call SyncClient(settings:).
features=(--no-default-features)
[ "${THUDO_RUST_HTTP:-0}" = 1 ] && features=()
for t in $TARGETS; do cargo build --release -p thudo-ffi --target "$t" ${features[@]+"${features[@]}"}; done
OUT=build/xcframework; rm -rf "$OUT" ios/ThudoFFI.xcframework; mkdir -p "$OUT"/{sim,mac}
lipo -create target/aarch64-apple-ios-sim/release/libthudo_ffi.a target/x86_64-apple-ios/release/libthudo_ffi.a \
  -output "$OUT/sim/libthudo_ffi.a"
lipo -create target/aarch64-apple-darwin/release/libthudo_ffi.a target/x86_64-apple-darwin/release/libthudo_ffi.a \
  -output "$OUT/mac/libthudo_ffi.a"
# Swift bindings, header and module map from the library (same interface on every target).
cargo run -q -p thudo-ffi --features bindgen --bin uniffi-bindgen -- generate \
  --library target/aarch64-apple-darwin/release/libthudo_ffi.a --config uniffi.toml --language swift --out-dir "$OUT/gen"
# Namespaced: Xcode copies every XCFramework's Headers/ into one shared include/ folder, so a
# module map at the top would clash with any other Rust library's ("Multiple commands produce
# include/module.modulemap"). Under Headers/ThudoFFI/ it is ours alone.
mkdir -p "$OUT/headers/ThudoFFI"
cp "$OUT/gen/thudoFFI.h" "$OUT/headers/ThudoFFI/"
cp "$OUT/gen/thudoFFI.modulemap" "$OUT/headers/ThudoFFI/module.modulemap"
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libthudo_ffi.a -headers "$OUT/headers" \
  -library "$OUT/sim/libthudo_ffi.a" -headers "$OUT/headers" \
  -library "$OUT/mac/libthudo_ffi.a" -headers "$OUT/headers" \
  -output ios/ThudoFFI.xcframework
cp "$OUT/gen/Thudo.swift" ios/Sources/Thudo/Thudo.swift
echo "ios/ThudoFFI.xcframework and ios/Sources/Thudo/Thudo.swift are ready: add the package to Xcode."
