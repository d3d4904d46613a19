// swift-tools-version:6.0
// libFuzzer targets for ptp's readers of untrusted bytes. Not part of the product: built and run
// by fuzz/run, which passes -sanitize=fuzzer and -DFUZZING.
import PackageDescription

let package = Package(
    name: "ptp-fuzz",
    dependencies: [.package(name: "ptp", path: "..")],
    targets: [
        .executableTarget(name: "ptp-fuzz", dependencies: [.product(name: "FuzzTargets", package: "ptp")]),
    ]
)
