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
        // For the libFuzzer package in fuzz/ (not a user product).
        .library(name: "FuzzTargets", targets: ["FuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
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
        .systemLibrary(
            name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"])]),
        // oneDNN ships no pkg-config file; its headers and library are on the default paths.
        .systemLibrary(
            name: "CDNNL", path: "Sources/CDNNL",
            providers: [.apt(["libdnnl-dev"])]),

        .target(name: "CHeap"),
        // The edit contract: the spec of one edit, its JSON form and its checks. What the CLI,
        // the coordinator, the workers and the Engine agree on; no model or network code.
        .target(name: "EditContract"),
        // RGB images, PNG and JPEG files, atomic writes: shared by the Engine and the Coordinator.
        .target(name: "Imaging", dependencies: ["CPNG", "CTurboJPEG"]),

        // Tensors, kernels, model I/O, models and pipelines. No networking.
        .target(name: "Engine", dependencies: [
            "EditContract", "CBLAS", "CDNNL", "Imaging", "CHeap",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: vectorISA),
        // The shapes world's renderer, detectors and scores of a model (`ptp eval`), on the
        // Engine's public API: users of the Engine library do not link them.
        .target(name: "Evaluation", dependencies: ["Engine", "Imaging"], swiftSettings: vectorISA),
        // The measurements behind `ptp bench`: kernels against the machine's sgemm peak, the UNet
        // and pipeline against their Python peers, the codec, dispatch and a local cluster.
        .target(name: "Benchmarks", dependencies: [
            "Engine", "EditContract", "Evaluation", "Imaging", "Wire", "Coordinator",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Frames, messages, tensor codec, authentication and TLS. No models.
        .target(name: "Wire", dependencies: [
            "EditContract", "CZstd",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "Worker", dependencies: [
            "EditContract", "Engine", "Wire", "Imaging",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Coordinator", dependencies: [
            "EditContract", "Wire", "Imaging",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "OrderedCollections", package: "swift-collections"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ], resources: [
            // The live status page, in the binary (a coordinator copied alone still serves it).
            .embedInCode("StatusPage/index.html"), .embedInCode("StatusPage/status.css"), .embedInCode("StatusPage/status.js"),
        ]),

        // The readers of untrusted bytes as fuzzing drives them (fuzz/, and the regression tests).
        .target(name: "FuzzTargets", dependencies: [
            "EditContract", "Engine", "Imaging", "Wire",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),

        .executableTarget(
            name: "ptp",
            dependencies: [
                "EditContract", "Engine", "Evaluation", "Benchmarks", "Imaging", "Wire", "Worker", "Coordinator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        .testTarget(name: "EditContractTests", dependencies: ["EditContract"]),
        .testTarget(name: "EngineTests", dependencies: ["EditContract", "Engine", "Imaging", "FuzzTargets"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Engine", "EditContract", "Imaging"]),
        .testTarget(name: "ClusterTests", dependencies: [
            "ptp", "Benchmarks", "Coordinator", "EditContract", "Wire", "Engine", "Imaging",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        // The coordinator's scheduling core, driven directly: no process, no socket.
        .testTarget(name: "CoordinatorTests", dependencies: [
            "Coordinator", "EditContract", "Imaging", "Wire",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        // The worker's link to the coordinator, its parts on NIO's EmbeddedChannel.
        .testTarget(name: "WorkerTests", dependencies: [
            "Worker", "Wire", "EditContract",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "WireTests", dependencies: [
            "Wire", "EditContract",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ]
)
