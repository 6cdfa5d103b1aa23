#!/usr/bin/env bash
# The desktop artifact as an app team consumes it: published (scripts/publish-desktop.sh, debug
# build) to a throwaway Maven repository, then android/desktop-sample, a separate project that
# only names vn.hanoi.thudo:thudo-desktop and that repository, runs its JVM test against it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(mktemp -d)
trap 'rm -rf "$repo"' EXIT
scripts/publish-desktop.sh --debug --repo "file://$repo"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
jar="$repo/vn/hanoi/thudo/thudo-desktop/$version/thudo-desktop-$version.jar"
python3 - "$jar" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "linux-x86-64/libthudo_ffi.so" in names, "no native library in the jar"
assert "vn/hanoi/thudo/Vault.class" in names
assert not any(n.startswith("vn/hanoi/thudo/sample/") for n in names), "the sample program leaked in"
print(f"  {len(names)} entries, the native library at linux-x86-64/libthudo_ffi.so")
PY
rm -rf android/desktop-sample/target
# Resolve the artifact from the new repository, never from a copy a previous run left in ~/.m2.
cached="${HOME}/.m2/repository/vn/hanoi/thudo/thudo-desktop"
rm -rf "$cached"
mvn -B -ntp -q -f android/desktop-sample/pom.xml test -Dthudo.repo="file://$repo" -Dthudo.version="$version"
grep -q "Tests run: 1, Failures: 0, Errors: 0, Skipped: 0" android/desktop-sample/target/surefire-reports/*.txt
rm -rf "$cached"
echo "the sample project ran its test on vn.hanoi.thudo:thudo-desktop:$version from a Maven repository"
