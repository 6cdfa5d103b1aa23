#!/usr/bin/env bash
# Makes the iOS release artifact the Swift package downloads: dist/ThudoFFI.xcframework.zip and
# its SHA-256, and writes their URL and checksum into Package.swift.
#   scripts/release-ios.sh BASE_URL [--xcframework DIR] [--package FILE] [--out DIR]
# BASE_URL is where the zip will be served; the URL written is BASE_URL/<version>/ThudoFFI.xcframework.zip
# (<version> from Cargo.toml). Without --xcframework it builds one first (macOS with Xcode).
# scripts/release-swift.sh calls it for the release package's manifest (docs/ios.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_URL=${1:?usage: scripts/release-ios.sh BASE_URL [--xcframework DIR] [--package FILE] [--out DIR]}
shift
XCF="" PKG="" OUT=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --xcframework) XCF=$2; shift 2 ;;
    --package) PKG=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$PKG" ] || { echo "--package FILE is required (the release manifest)" >&2; exit 2; }
if [ -z "$XCF" ]; then
  scripts/build-xcframework.sh
  XCF=ios/ThudoFFI.xcframework
fi
[ -f "$XCF/Info.plist" ] || { echo "$XCF is not an XCFramework (no Info.plist)" >&2; exit 1; }
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
mkdir -p "$OUT"
ZIP="$OUT/ThudoFFI.xcframework.zip"
# The zip holds ThudoFFI.xcframework at its top, entries sorted and dated 1980 so the same
# framework always gives the same checksum.
python3 - "$XCF" "$ZIP" <<'PY'
import os, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            arc = os.path.join("ThudoFFI.xcframework", os.path.relpath(path, src))
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(path).st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
PY
# SwiftPM's checksum (`swift package compute-checksum`) is the file's SHA-256.
SUM=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$ZIP")
echo "$SUM" > "$ZIP.sha256"
URL="$BASE_URL/$VERSION/ThudoFFI.xcframework.zip"
sed -i.bak -e "s|^let releaseURL = \".*\"$|let releaseURL = \"$URL\"|" \
  -e "s|^let releaseChecksum = \".*\"$|let releaseChecksum = \"$SUM\"|" "$PKG"
rm -f "$PKG.bak"
grep -q "^let releaseChecksum = \"$SUM\"$" "$PKG" || { echo "could not write the checksum into $PKG" >&2; exit 1; }
echo "$ZIP ($SUM) for $URL; $PKG updated"
