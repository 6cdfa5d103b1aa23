#!/usr/bin/env bash
# Packaging checks that need no Android SDK and no Mac: the native library's 16 KB page
# alignment, the Android-flavoured bindings, the iOS privacy manifest, and the iOS release
# artifact (zip, checksum, the package manifest pointing at it). Run after scripts/bindings.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB=${1:-target/debug/libthudo_ffi.so}

echo "16 KB pages:"
libs=("$LIB")
for so in android/jniLibs/*/libthudo_ffi.so; do [ -f "$so" ] && libs+=("$so"); done
python3 scripts/check-elf-alignment.py "${libs[@]}"

echo "Android bindings use UniFFI's Android options:"
grep -q "android.system.SystemCleaner" build/bindings/kotlin-android/vn/hanoi/thudo/thudo_ffi.kt
if grep -q "android.system.SystemCleaner" build/bindings/kotlin/vn/hanoi/thudo/thudo_ffi.kt; then
  echo "the JVM bindings use Android's SystemCleaner" >&2
  exit 1
fi
echo "  build/bindings/kotlin-android: SystemCleaner on Android 14+, JNA cleaner before"

echo "One set of versions for the tested JVM build (pom.xml) and the Android build (Gradle):"
python3 - <<'PY'
import re, xml.etree.ElementTree as ET
ns = {"m": "http://maven.apache.org/POM/4.0.0"}
props = {e.tag.split("}")[1]: e.text for e in ET.parse("android/pom.xml").getroot().find("m:properties", ns)}
gradle = open("android/build.gradle.kts").read()
wanted = {
    "kotlin.version": r'id\("org.jetbrains.kotlin.android"\) version "([^"]+)"',
    "coroutines.version": r'kotlinx-coroutines-android:([^"]+)"',
    "jna.version": r'net.java.dev.jna:jna:([^"@]+)@aar"',
    "okhttp.version": r'com.squareup.okhttp3:okhttp:([^"]+)"',
    "junit.version": r'org.junit.jupiter:junit-jupiter:([^"]+)"',
}
for prop, pattern in wanted.items():
    found = re.findall(pattern, gradle)
    assert found, f"{prop}: not in build.gradle.kts"
    assert all(v == props[prop] for v in found), f"{prop}: pom.xml {props[prop]}, Gradle {found}"
sample = {e.tag.split("}")[1]: e.text for e in ET.parse("android/desktop-sample/pom.xml").getroot().find("m:properties", ns)}
assert sample["kotlin.version"] == props["kotlin.version"], "desktop-sample's Kotlin"
print("  " + ", ".join(f"{p.split('.')[0]} {props[p]}" for p in wanted))
PY

echo "Gradle wrapper:"
python3 - <<'PY'
import os, re, zipfile
props = dict(l.split("=", 1) for l in open("android/gradle/wrapper/gradle-wrapper.properties").read().splitlines() if "=" in l)
gradle = re.fullmatch(r"https\\://services\.gradle\.org/distributions/gradle-([0-9.]+)-bin\.zip", props["distributionUrl"]).group(1)
agp = re.search(r'id\("com.android.library"\) version "([0-9]+)\.([0-9]+)', open("android/build.gradle.kts").read())
# AGP 8.x needs at least Gradle 8.<same minor> (Android's compatibility table).
need = (int(agp.group(1)), int(agp.group(2)))
assert tuple(map(int, gradle.split(".")[:2])) >= need, f"AGP {need} needs Gradle {need}, wrapper {gradle}"
assert os.access("android/gradlew", os.X_OK), "gradlew is not executable"
# Gradle's published SHA-256 of each distribution (gradle.org's release checksums): the wrapper
# refuses a download that differs. A new Gradle version needs its line here.
published = {"8.14.3": "bd71102213493060956ec229d946beee57158dbd89d0e62b91bca0fa2c5f3531"}
assert props.get("distributionSha256Sum") == published.get(gradle), f"the wrapper's distributionSha256Sum is not Gradle {gradle}'s"
assert "org/gradle/wrapper/GradleWrapperMain.class" in zipfile.ZipFile("android/gradle/wrapper/gradle-wrapper.jar").namelist()
assert f"--gradle-version {gradle}" in open("docs/android.md").read(), "docs/android.md names another Gradle"
print(f"  Gradle {gradle} for Android Gradle plugin {need[0]}.{need[1]}")
PY

echo "iOS privacy manifest:"
python3 - <<'PY'
import plistlib
with open("ios/Sources/Thudo/PrivacyInfo.xcprivacy", "rb") as f:
    m = plistlib.load(f)
assert m["NSPrivacyTracking"] is False and m["NSPrivacyTrackingDomains"] == []
apis = {a["NSPrivacyAccessedAPIType"]: a["NSPrivacyAccessedAPITypeReasons"] for a in m["NSPrivacyAccessedAPITypes"]}
for category in ("FileTimestamp", "DiskSpace", "SystemBootTime"):
    reasons = apis["NSPrivacyAccessedAPICategory" + category]
    assert reasons, category
collected = [d["NSPrivacyCollectedDataType"] for d in m["NSPrivacyCollectedDataTypes"]]
assert "NSPrivacyCollectedDataTypeHealth" in collected
assert all(not d["NSPrivacyCollectedDataTypeTracking"] for d in m["NSPrivacyCollectedDataTypes"])
print(f"  {len(apis)} required-reason API categories, {len(collected)} collected data types, no tracking")
PY
grep -q 'resources: \[.copy("PrivacyInfo.xcprivacy")\]' Package.swift

echo "iOS release artifact:"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ThudoFFI.xcframework/ios-arm64"
printf '<plist version="1.0"><dict/></plist>\n' > "$tmp/ThudoFFI.xcframework/Info.plist"
head -c 4096 /dev/urandom > "$tmp/ThudoFFI.xcframework/ios-arm64/libthudo_ffi.a"
scripts/release-swift.sh https://downloads.example.vn/thudo --xcframework "$tmp/ThudoFFI.xcframework" --bindings build/bindings/swift \
  --out "$tmp/dist" >/dev/null
manifest="$tmp/dist/thudo-swift/Package.swift"
sum=$(sha256sum "$tmp/dist/ThudoFFI.xcframework.zip" | cut -d' ' -f1)
grep -q "^let releaseChecksum = \"$sum\"$" "$manifest"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
grep -q "^let releaseURL = \"https://downloads.example.vn/thudo/$version/ThudoFFI.xcframework.zip\"$" "$manifest"
# What the tag holds is the manifest with the checksum.
git -C "$tmp/dist/thudo-swift" show "$version:Package.swift" | grep -q "^let releaseChecksum = \"$sum\"$"
python3 - "$tmp/dist/ThudoFFI.xcframework.zip" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "ThudoFFI.xcframework/Info.plist" in names, names
PY
# The same framework gives the same checksum.
scripts/release-swift.sh https://downloads.example.vn/thudo --xcframework "$tmp/ThudoFFI.xcframework" --bindings build/bindings/swift \
  --out "$tmp/again" >/dev/null
[ "$(sha256sum "$tmp/again/ThudoFFI.xcframework.zip" | cut -d' ' -f1)" = "$sum" ]
echo "  zip with ThudoFFI.xcframework at its top, SHA-256 $sum in the tagged release manifest, reproducible"
