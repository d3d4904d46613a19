// swift-tools-version:6.0
// Prompt-to-Prompt image editing on CPUs, from one machine to a cluster.
import PackageDescription

/// The numeric kernels are written as plain loops for LLVM to vectorise; Haswell (AVX2, FMA,
/// 2013 on) is the oldest x86 CPU a worker is expected to run on.
#if arch(x86_64)
let vectorISA: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
#else
let vectorISA: [SwiftSetting] = []
#endif

let package = Package(
    name: "ptp",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ptp", targets: ["ptp"]),
        .library(name: "Engine", targets: ["Engine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries, located through pkg-config.
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]),
        .systemLibrary(
            name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),

        .target(name: "CHeap"),
        // RGB images, PNG files, atomic writes: shared by the Engine and the Coordinator.
        .target(name: "Imaging", dependencies: ["CPNG"]),

        // Tensors, kernels, model I/O, models and pipelines. No networking.
        .target(name: "Engine", dependencies: ["CBLAS", "Imaging", "CHeap"], swiftSettings: vectorISA),
        // Frames, messages, tensor codec and authentication. No models.
        .target(name: "Wire", dependencies: ["CZstd"]),
        .target(name: "Worker", dependencies: ["Engine", "Wire"]),
        .target(name: "Coordinator", dependencies: ["Wire", "Imaging"]),

        .executableTarget(
            name: "ptp",
            dependencies: [
                "Engine", "Imaging", "Wire", "Worker", "Coordinator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(name: "EngineTests", dependencies: ["Engine", "Imaging"]),
    ]
)
