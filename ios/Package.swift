// swift-tools-version:5.9
// thudo's Swift package.
// - Apple platforms: the Rust library comes as a binary target, ThudoFFI.xcframework, built by
//   scripts/build-xcframework.sh on a Mac (docs/ios.md).
// - Linux (CI): it links the host-built library; scripts/test-swift.sh generates
//   Sources/Thudo/Thudo.swift and Sources/ThudoFFI/ and runs `swift test`.
import PackageDescription

#if canImport(Darwin)
let ffi: Target = .binaryTarget(name: "ThudoFFI", path: "ThudoFFI.xcframework")
let linker: [LinkerSetting] = []
#else
// The C header and module map UniFFI generates for the Rust library.
let ffi: Target = .systemLibrary(name: "ThudoFFI", path: "Sources/ThudoFFI")
let linker: [LinkerSetting] = [.linkedLibrary("thudo_ffi")]
#endif

let package = Package(
    name: "Thudo",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Thudo", targets: ["Thudo"]),
    ],
    targets: [
        ffi,
        .target(
            name: "Thudo",
            dependencies: ["ThudoFFI"],
            path: "Sources/Thudo",
            linkerSettings: linker
        ),
        .testTarget(name: "ThudoTests", dependencies: ["Thudo"], path: "Tests/ThudoTests"),
    ]
)
