#!/usr/bin/env bash
# Publishes the desktop artifact vn.hanoi.thudo:thudo-desktop:<version>: the Kotlin bindings and
# helpers with this host's native library inside the jar (JNA finds it there), for app teams'
# JVM unit tests and Robolectric tests. Run it on each desktop platform the team tests on
# (Linux x86_64 here; a Mac adds darwin-aarch64) into the same repository.
#   scripts/publish-desktop.sh [--repo URL] [--debug]
# --repo: a Maven repository URL (default file://<repo>/build/maven); --debug: the debug build
# of the native library (faster to build, for checks) instead of the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="file://$PWD/build/maven" PROFILE=release
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) REPO=$2; shift 2 ;;
    --debug) PROFILE=debug; shift ;;
    *) echo "usage: $0 [--repo URL] [--debug]" >&2; exit 2 ;;
  esac
done
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
POM_VERSION=$(python3 -c 'import sys, xml.etree.ElementTree as E; print(E.parse(sys.argv[1]).getroot().find("{http://maven.apache.org/POM/4.0.0}version").text)' android/pom.xml)
[ "$VERSION" = "$POM_VERSION" ] || { echo "android/pom.xml is $POM_VERSION, Cargo.toml $VERSION" >&2; exit 1; }
LIB=$(scripts/bindings.sh "$PROFILE")
# JNA's resource prefix for this host.
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) PREFIX=linux-x86-64 ;;
  Linux-aarch64) PREFIX=linux-aarch64 ;;
  Darwin-arm64) PREFIX=darwin-aarch64 ;;
  Darwin-x86_64) PREFIX=darwin-x86-64 ;;
  *) echo "no JNA prefix known for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
rm -rf android/target/native
mkdir -p "android/target/native/$PREFIX"
cp "$LIB" "android/target/native/$PREFIX/"
command -v mvn >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; }
mvn -B -ntp -q -f android/pom.xml -Pdesktop deploy -DskipTests -Dmaven.install.skip=true \
  -DaltDeploymentRepository="thudo::$REPO"
echo "vn.hanoi.thudo:thudo-desktop:$VERSION ($PREFIX) in $REPO"
