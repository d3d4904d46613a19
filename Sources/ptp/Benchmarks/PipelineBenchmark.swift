import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation

/// Text to image per denoising step, `ptp generate` against diffusers' pipeline (`PipelineComparison`).
struct PipelineBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Seconds per denoising step of `ptp generate` and of diffusers' StableDiffusionPipeline, fp32 and bf16, and how far each side's bf16 image is from its fp32 one.",
        discussion: """
            Each side runs as a separate process for --short-steps and --long-steps steps; per step = \
            (t(long) - t(short)) / (long - short), each t the fastest of --repeats runs. The PyTorch side runs reference/bench_pipeline.py with the Python \
            given by --python (default: scripts/python-env), with torch.bfloat16 weights for bf16. Images of the long \
            runs are compared by PSNR (bf16 against fp32 on each side, and Swift fp32 against PyTorch fp32).
            """)

    @Option(help: "Model directory (a diffusers StableDiffusionPipeline folder).")
    var model: String

    @Option(help: "Prompt.")
    var prompt = "a photograph of an astronaut riding a horse"

    @Option(help: "Seed.")
    var seed: UInt64 = 1

    @Option(help: "Image side in pixels.")
    var size = 512

    @Option(help: "Steps of the short run.")
    var shortSteps = 2

    @Option(help: "Steps of the long run.")
    var longSteps = 5

    @Option(help: "Runs of each process; the fastest counts (this machine's speed drifts from minute to minute).")
    var repeats = 1

    @Option(help: "Threads for both sides.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Precisions (repeat; default: fp32 and, where the CPU runs it, bf16).")
    var precision: [Precision] = []

    @Option(help: "Scheduler for both sides: model, dpm++-karras or euler.")
    var scheduler = "model"

    @Option(help: "Python interpreter with torch and diffusers (default: from scripts/python-env).")
    var python: String?

    @Flag(help: "Skip the PyTorch side.")
    var swiftOnly = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard shortSteps >= 1, longSteps > shortSteps else { throw ValidationError("--long-steps must exceed --short-steps, both at least 1") }
        guard ["model", "dpm++-karras", "euler"].contains(scheduler) else { throw ValidationError("--scheduler: use model, dpm++-karras or euler") }
        guard size >= 64, size % 8 == 0, threads >= 1 else { throw ValidationError("--size must be a multiple of 8 from 64; --threads at least 1") }
    }

    func run() throws {
        let precisions = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : precision
        for precision in precisions { try precision.checkSupported() }
        let comparison = PipelineComparison(
            model: model, prompt: prompt, seed: seed, size: size, shortSteps: shortSteps, longSteps: longSteps, repeats: repeats, threads: threads,
            precisions: precisions, scheduler: scheduler, python: python, swiftOnly: swiftOnly,
            executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath())
        print(try comparison.run())
    }
}
