// swift-tools-version:5.9
// thudo's Swift package. On Linux (CI) it builds against the host library:
// scripts/test-swift.sh generates Sources/Thudo/Thudo.swift and Sources/ThudoFFI/ from the
// library and runs `swift test`. Apple platforms get a binary XCFramework target (docs/ios.md).
import PackageDescription

let package = Package(
    name: "Thudo",
    products: [
        .library(name: "Thudo", targets: ["Thudo"]),
    ],
    targets: [
        // The C header and module map UniFFI generates for the Rust library.
        .systemLibrary(name: "ThudoFFI", path: "Sources/ThudoFFI"),
        .target(
            name: "Thudo",
            dependencies: ["ThudoFFI"],
            path: "Sources/Thudo",
            linkerSettings: [.linkedLibrary("thudo_ffi")]
        ),
        .testTarget(name: "ThudoTests", dependencies: ["Thudo"], path: "Tests/ThudoTests"),
    ]
)
