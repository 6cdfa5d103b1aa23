#!/usr/bin/env bash
# Builds the Android native libraries (arm64-v8a, armeabi-v7a, x86_64) with cargo-ndk and the
# Kotlin bindings, for the Gradle library in android/. Needs the Android NDK (ANDROID_NDK_HOME)
# and the Rust targets; it cannot run in this repository's CI (no NDK there).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to the Android NDK}"
command -v cargo-ndk >/dev/null || cargo install cargo-ndk --locked
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
# API 24: the library's minSdk. Release profile: size-tuned (see Cargo.toml, docs/android.md).
cargo ndk --platform 24 -t arm64-v8a -t armeabi-v7a -t x86_64 -o android/build/jniLibs \
  build --release -p thudo-ffi
# The bindings come from the host build of the same sources (identical interface).
scripts/bindings.sh release >/dev/null
echo "native libraries in android/build/jniLibs, bindings in build/bindings/kotlin;"
echo "now: cd android && gradle assembleRelease"
