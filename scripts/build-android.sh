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
# 16 KB pages and packed relocations come from .cargo/config.toml. The libraries go to
# android/jniLibs, outside Gradle's build folder, so a `gradle clean` never ships an AAR
# without them.
# Without the built-in HTTPS client (about 0.9 MB per ABI): apps sync through OkHttp
# (OkHttpSyncTransport). THUDO_RUST_HTTP=1 keeps it, for apps that call SyncClient(settings).
features=(--no-default-features)
[ "${THUDO_RUST_HTTP:-0}" = 1 ] && features=()
cargo ndk --platform 24 -t arm64-v8a -t armeabi-v7a -t x86_64 -o android/jniLibs \
  build --release -p thudo-ffi ${features[@]+"${features[@]}"}
python3 scripts/check-elf-alignment.py android/jniLibs/*/libthudo_ffi.so
# The bindings come from the host build of the same sources (identical interface).
scripts/bindings.sh release >/dev/null
echo "native libraries in android/jniLibs, bindings in build/bindings/kotlin-android;"
echo "now: cd android && gradle assembleRelease (or publishToMavenLocal)"
