import ArgumentParser
import Engine
import Foundation

struct Benchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure this machine: sgemm peak and the Engine's kernels against it.",
        subcommands: [KernelBenchmark.self, UNetBenchmark.self, DispatchBenchmark.self, CodecBenchmark.self, ClusterBenchmark.self])
}

struct KernelBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "sgemm GFLOP/s, then conv2d on Stable Diffusion shapes as a fraction of it.")

    @Option(help: "Threads for BLAS and Engine loops (default: all cores).")
    var threads: Int?

    @Option(help: "Timed repetitions per case; the best is reported.")
    var repeats: Int = 5

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        if let threads { ComputeThreads.setThreadCount(threads) }
        print("BLAS: \(BLAS.configuration)")
        print("threads: \(ComputeThreads.count)")
        let report = KernelReport.measure(repeats: repeats)
        print(report.text)
    }
}
