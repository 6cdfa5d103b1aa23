#!/usr/bin/env bash
# Kotlin binding tests on the JVM against the host-built library (no Android SDK needed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mvn >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; }
LIB=$(scripts/bindings.sh debug)
# The sync tests talk to the reference backend on loopback.
scripts/with-server.sh mvn -B -ntp -f android/pom.xml -Pandroid-framework test -Dthudo.lib.dir="$PWD/$(dirname "$LIB")" "$@"
