import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation

struct Benchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure this machine: sgemm peak and the Engine's kernels against it.",
        subcommands: [KernelBenchmark.self, UNetBenchmark.self, DecoderBenchmark.self, PipelineBenchmark.self, DispatchBenchmark.self, CodecBenchmark.self, ClusterBenchmark.self, ScaleBenchmark.self, VariantsBenchmark.self])
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

    @Option(help: "Precisions of the oneDNN cases: fp32, bf16, or both (default: both where the CPU runs bf16).")
    var precision: [Precision] = []

    func run() throws {
        if let threads { ComputeThreads.setThreadCount(threads) }
        let precisions = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : precision
        for precision in precisions { try precision.checkSupported() }
        print("BLAS: \(BLAS.configuration)")
        print("oneDNN: \(Engine.oneDNNConfiguration)")
        print("threads: \(ComputeThreads.count)")
        let report = KernelReport.measure(repeats: repeats, precisions: precisions)
        print(report.text)
    }
}
