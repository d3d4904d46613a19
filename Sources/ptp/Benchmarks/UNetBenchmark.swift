import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation

/// One UNet forward in Swift and in PyTorch, fp32 and bf16, on the same weights and inputs
/// (`UNetComparison`).
struct UNetBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "One UNet forward in Swift and PyTorch, fp32 and bf16: wall time, ratios, GFLOP/s, peak memory, error against PyTorch fp32.",
        discussion: """
            The model is a diffusers directory, for example the full-size SD 1.5 architecture with random weights \
            written by `$(scripts/python-env) reference/make_sd15.py .cache/sd15-random`, or SDXL's by \
            `reference/make_sdxl.py .cache/sdxl-random` (with --latent 128 for 1024 px). Each side and precision runs \
            in its own process (so peak memory is its own); the PyTorch side runs reference/bench_unet.py with the \
            Python given by --python (default: scripts/python-env), with weights and inputs in torch.bfloat16 for bf16.
            """)

    @Option(help: "Model directory (with unet/).")
    var model: String

    @Option(help: "Batch size.")
    var batch: Int = 2

    @Option(help: "Latent side (64 for 512 px).")
    var latent: Int = 64

    @Option(help: "Threads for both sides.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed runs after a warm-up; the best is reported.")
    var repeats: Int = 2

    @Option(help: "Precisions to time (repeat the option; default: fp32 and, where the CPU runs it, bf16).")
    var precision: [Precision] = []

    @Option(help: "Python interpreter with torch and diffusers (default: from scripts/python-env).")
    var python: String?

    @Flag(help: "Skip the PyTorch side.")
    var swiftOnly = false

    @Option(help: ArgumentHelp("Run one Swift side on these inputs and write its output here (used by the parent run).", visibility: .hidden))
    var child: String?

    func validate() throws {
        guard batch >= 1, latent >= 8, threads >= 1, repeats >= 0 else {
            throw ValidationError("--batch and --threads must be at least 1, --latent at least 8, --repeats at least 0")
        }
    }

    func run() throws {
        ComputeThreads.setThreadCount(threads)
        if let child {
            let parts = child.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, let precision = precision.first else { throw ValidationError("--child takes INPUTS:OUTPUT and one --precision") }
            return try UNetComparison.runChild(model: URL(fileURLWithPath: model), inputs: URL(fileURLWithPath: parts[0]),
                                               output: URL(fileURLWithPath: parts[1]), precision: precision, repeats: repeats)
        }
        let precisions = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : precision
        for precision in precisions { try precision.checkSupported() }
        let comparison = UNetComparison(
            model: URL(fileURLWithPath: model), batch: batch, latent: latent, threads: threads, repeats: repeats, precisions: precisions,
            python: python, swiftOnly: swiftOnly, executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath(),
            childArguments: ["bench", "unet", "--model", model, "--batch", String(batch), "--latent", String(latent), "--threads", String(threads),
                             "--repeats", String(repeats)])
        print(try comparison.run())
    }
}
