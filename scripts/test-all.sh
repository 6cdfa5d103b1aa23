#!/usr/bin/env bash
# Every test of the project: Rust (format, lints, unit, integration, crash), Kotlin on the JVM,
# Swift on Linux. Installs what a fresh Debian machine lacks. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
need_apt() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

command -v cargo >/dev/null || { echo "Rust (rustup) is required" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
command -v javac >/dev/null || need_apt openjdk-17-jdk-headless
command -v mvn >/dev/null || need_apt maven
# zbarimg: the independent decoder the transit QR test reads the rendered PNG with.
command -v zbarimg >/dev/null || need_apt zbar-tools
# A virtual environment for the API contract's fuzzer (Debian splits venv out of python3).
python3 -c 'import ensurepip' 2>/dev/null || need_apt python3-venv

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "The mobile library without the built-in HTTPS client (--no-default-features)"
cargo clippy -p thudo-ffi --no-default-features --all-targets --quiet -- -D warnings
cargo test -p thudo-ffi --no-default-features --lib --quiet 2>&1 | grep -E "^test result"
tree=$(cargo tree -p thudo-ffi --no-default-features -e normal)
if grep -E "reqwest|rustls|hyper" <<<"$tree"; then
  echo "the mobile library without rust-http still links an HTTP or TLS stack" >&2
  exit 1
fi
step "Rust tests (crash test: ${THUDO_CRASH_ROUNDS:-100} SIGKILL rounds)"
cargo test --workspace --quiet 2>&1
step "The backend's tests again on PostgreSQL (a throwaway cluster, installed from Debian when missing), with the tests only PostgreSQL can run"
scripts/with-postgres.sh cargo test -p thudo-server --quiet -- --include-ignored 2>&1
step "The API contract: Schemathesis against the live server, without credentials and once per kind of caller"
scripts/test-api-contract.sh
step "The API contract again with the server on PostgreSQL (10 s a run)"
THUDO_CONTRACT_SECONDS=10 scripts/with-postgres.sh scripts/test-api-contract.sh
step "README's main job: thudo demo"
scripts/demo.sh --no-qr
step "Kotlin tests (JVM, generated bindings, host library)"
scripts/test-kotlin.sh
step "The desktop artifact (vn.hanoi.thudo:thudo-desktop) published to a Maven repository and used by a separate project's tests"
scripts/check-desktop-artifact.sh
step "Swift tests (Swift 6 language mode on Linux, generated bindings, host library)"
scripts/test-swift.sh
step "The Swift package as an app adds it: released (tagged, generated sources in), resolved by URL by a separate app package, built and run"
scripts/check-swift-package.sh
step "Packaging checks (16 KB pages, Android bindings, iOS privacy manifest and release artifact)"
scripts/check-packages.sh
