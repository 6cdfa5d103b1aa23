#!/usr/bin/env bash
# Swift binding tests on Linux: `swift test` of ios/ inside a Debian 13 root (Swift 6), against
# the host-built library. The root is built once (scripts/swift-root.sh) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(scripts/swift-root.sh)
LIB=$(scripts/bindings.sh debug)
GEN=build/bindings/swift
mkdir -p ios/Sources/Thudo ios/Sources/ThudoFFI
# The package's generated parts: the Swift bindings and the C module of the library.
cp "$GEN/Thudo.swift" ios/Sources/Thudo/Thudo.swift
cp "$GEN/thudoFFI.h" ios/Sources/ThudoFFI/thudoFFI.h
# Darwin is not there on Linux; the module needs only the C standard headers.
sed -e '/use "Darwin"/d' "$GEN/thudoFFI.modulemap" > ios/Sources/ThudoFFI/module.modulemap

W="$ROOT/w"
mkdir -p "$W/lib" "$W/pkg/ios"
cp "$LIB" "$W/lib/"
# The health-card test fixtures (public SMART Health Card examples kept in the repository).
rm -rf "$W/fixtures"; mkdir -p "$W/fixtures"; cp -r core/tests/data/shc "$W/fixtures/shc"; cp -r core/tests/data/fhir "$W/fixtures/fhir"; cp -r core/tests/data/dcc "$W/fixtures/dcc"; cp -r core/tests/data/ddcc "$W/fixtures/ddcc"
# Copy the package (Package.swift at the top, ios/) but keep SwiftPM's .build cache inside the
# root between runs; remove the previous copy's sources first, so a file deleted here does not
# linger there.
rm -rf "$W/ios" "$W/pkg/ios" "$W/pkg/Package.swift"
mkdir -p "$W/pkg/ios"
cp Package.swift "$W/pkg/"
tar -C ios --exclude=.build --exclude=ThudoFFI.xcframework -cf - . | tar -C "$W/pkg/ios" -xf -
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
# The sync tests talk to the reference backend on loopback (the root shares the network).
scripts/with-server.sh sh -c 'chroot "$0" /usr/bin/env LD_LIBRARY_PATH=/w/lib HOME=/tmp THUDO_FIXTURES=/w/fixtures/shc \
  THUDO_SERVER_URL="$THUDO_SERVER_URL" THUDO_DEMO_CITIZEN="$THUDO_DEMO_CITIZEN" \
  THUDO_ENROLMENT_CODES="$THUDO_ENROLMENT_CODES" THUDO_GATE_CODES="$THUDO_GATE_CODES" \
  /bin/sh -c "cd /w/pkg && swift test --disable-swift-testing -Xlinker -L/w/lib 2>&1 \
    && echo \"==> the sample program (ios/Samples/CitizenDay), with Swift on Linux\" \
    && swift run -Xlinker -L/w/lib CitizenDay 2>&1"' "$ROOT"
