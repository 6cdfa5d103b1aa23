#!/usr/bin/env bash
# The Swift package as an app team gets it: made by scripts/release-swift.sh (a tagged
# repository), added by URL to a separate app package (a file:// git URL, which SwiftPM clones
# and resolves by version tag as it does any remote), built with Swift on Linux against the
# host-built library, and run. Proves the released layout holds the generated sources and that
# the helpers compile against them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(scripts/swift-root.sh)
LIB=$(scripts/bindings.sh debug)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
W="$ROOT/w"
rm -rf "$W/release" "$W/app"
mkdir -p "$W/lib" "$W/app/Sources/App"
cp "$LIB" "$W/lib/"
scripts/release-swift.sh https://downloads.example.vn/thudo --out "$W/release" --bindings build/bindings/swift
grep -q "^let releaseURL = \"https://downloads.example.vn/thudo/$VERSION/ThudoFFI.xcframework.zip\"$" \
  "$W/release/thudo-swift/Package.swift"
[ "$(git -C "$W/release/thudo-swift" tag)" = "$VERSION" ]
git -C "$W/release/thudo-swift" ls-files --error-unmatch Sources/Thudo/Thudo.swift >/dev/null

cat > "$W/app/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "App",
    dependencies: [
        .package(url: "file:///w/release/thudo-swift", from: "$VERSION"),
    ],
    targets: [
        .executableTarget(name: "App", dependencies: [
            .product(name: "Thudo", package: "thudo-swift"),
            .product(name: "ThudoTesting", package: "thudo-swift"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
SWIFT
cat > "$W/app/Sources/App/main.swift" <<'SWIFT'
import Foundation
import Thudo
import ThudoTesting

// Generated API and helpers, as an app uses them.
let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-app-\(UUID().uuidString)").path
let vault = try await Vault.openWithPassphrase(path: path, passphrase: "correct horse battery staple",
                                               options: VaultOptions(kdfIterations: 10_000, cipher: nil))
let changes = vault.changes(["notes"])                               // helper: ChangeStream
try await vault.put(collection: "notes", id: "n1", body: Data("xin chào".utf8), index: [:])
func firstChange(_ changes: ChangeStream) async -> [String] {
    var seen = changes.makeAsyncIterator()
    return await seen.next() ?? []
}
let changed = await firstChange(changes)
let record = try await vault.get(collection: "notes", id: "n1")
let status = try await syncStatus(vault: vault)
do {
    _ = try await vault.get(collection: "notes", id: "missing")
} catch let error as VaultError {
    print("typed error: \(error.code())")                            // helper: codes
}
// The fakes product stands in for the backend behind the generated protocol.
let fake: SyncClientProtocol = FakeSyncClient()
_ = try await fake.register(vault: vault, idToken: "id.token", deviceName: "app", cancel: nil)
let faked = try await fake.sync(vault: vault, library: nil, observer: nil, cancel: nil)
print("fake sync pulled \(faked.pulled)")
print("thudo by URL: \(String(decoding: record.body, as: UTF8.self)), changed \(changed), \(status.pendingUploads) waiting")
await vault.shutdown()
SWIFT
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
chroot "$ROOT" /usr/bin/env HOME=/tmp LD_LIBRARY_PATH=/w/lib /bin/sh -c \
  "cd /w/app && { swift build -Xlinker -L/w/lib > build.log 2>&1 || { tail -30 build.log; exit 1; }; } && .build/debug/App" \
  | tee "$W/app/out.txt"
grep -q "^thudo by URL: xin chào, changed \[\"notes\"\], 0 waiting$" "$W/app/out.txt"
grep -q "^typed error: vault.not_found$" "$W/app/out.txt"
grep -q "^fake sync pulled 0$" "$W/app/out.txt"
echo "the package resolved by URL at $VERSION, built and ran"
