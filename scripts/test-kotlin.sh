#!/usr/bin/env bash
# Kotlin binding tests on the JVM against the host-built library (no Android SDK needed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mvn >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; }
LIB=$(scripts/bindings.sh debug)
LIB_DIR="$PWD/$(dirname "$LIB")"
# The sync tests and the sample program talk to the reference backend on loopback.
scripts/with-server.sh sh -c '
  set -e
  lib_dir=$0
  mvn -B -ntp -f android/pom.xml -Pandroid-framework test -Dthudo.lib.dir="$lib_dir" "$@"
  echo "==> the sample program (src/sample/kotlin), on the JVM"
  mvn -B -ntp -q -f android/pom.xml dependency:build-classpath -Dmdep.includeScope=runtime -Dmdep.outputFile=target/classpath.txt
  java -Djna.library.path="$lib_dir" -cp "android/target/classes:$(cat android/target/classpath.txt)" vn.hanoi.thudo.sample.CitizenDayKt
' "$LIB_DIR" "$@"
