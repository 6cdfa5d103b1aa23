// swift-tools-version:6.0
// thudo's Swift package as it is developed here. Apps add the released package by URL instead:
// its own repository, made by scripts/release-swift.sh (generated sources in, the XCFramework
// downloaded and checked against its SHA-256, versions tagged; docs/ios.md).
// - Apple platforms: the Rust library is the local build ios/ThudoFFI.xcframework
//   (scripts/build-xcframework.sh).
// - Linux (CI): it links the host-built library; scripts/test-swift.sh generates
//   ios/Sources/Thudo/Thudo.swift and ios/Sources/ThudoFFI/ and runs `swift test`.
// Swift 6 language mode; the generated code and the helpers compile without warnings in it.
import PackageDescription

#if canImport(Darwin)
let ffi: Target = .binaryTarget(name: "ThudoFFI", path: "ios/ThudoFFI.xcframework")
let linker: [LinkerSetting] = []
#else
// The C header and module map UniFFI generates for the Rust library.
let ffi: Target = .systemLibrary(name: "ThudoFFI", path: "ios/Sources/ThudoFFI")
let linker: [LinkerSetting] = [.linkedLibrary("thudo_ffi")]
#endif

let package = Package(
    name: "Thudo",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Thudo", targets: ["Thudo"]),
        // In-memory fakes for apps' unit tests (FakeSyncClient, FakeTransitClient).
        .library(name: "ThudoTesting", targets: ["ThudoTesting"]),
    ],
    targets: [
        ffi,
        .target(
            name: "Thudo",
            dependencies: ["ThudoFFI"],
            path: "ios/Sources/Thudo",
            // What the library and its bundled SQLite use and collect, for the app's privacy report.
            resources: [.copy("PrivacyInfo.xcprivacy")],
            linkerSettings: linker
        ),
        .target(name: "ThudoTesting", dependencies: ["Thudo"], path: "ios/Sources/ThudoTesting"),
        .testTarget(name: "ThudoTests", dependencies: ["Thudo", "ThudoTesting"], path: "ios/Tests/ThudoTests"),
        // The sample program (not a product), run by scripts/test-swift.sh.
        .executableTarget(name: "CitizenDay", dependencies: ["Thudo"], path: "ios/Samples/CitizenDay"),
    ],
    swiftLanguageModes: [.v6]
)
