import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation

/// The options `ptp bench unet` and `ptp bench vae` share: the model, threads, repeats,
/// precisions and the peers.
struct ComponentBenchmarkOptions: ParsableArguments {
    @Option(help: "Model directory (with unet/ and vae/).")
    var model: String

    @Option(help: "Latent side (64 for 512 px, 128 for SDXL's 1024 px).")
    var latent: Int = 64

    @Option(help: "Threads for every side.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed runs after a warm-up; the best is reported.")
    var repeats: Int = 2

    @Option(help: "Precisions to time (repeat the option; default: fp32 and, where the CPU runs it, bf16).")
    var precision: [Precision] = []

    @Option(help: "Python interpreter with torch and diffusers, and openvino for --openvino (default: from scripts/python-env).")
    var python: String?

    @Flag(help: "Skip the PyTorch side.")
    var swiftOnly = false

    @Flag(name: .customLong("openvino"), help: "Add OpenVINO's sides: the same diffusers module converted with openvino.convert_model, at each precision.")
    var openVINO = false

    @Option(help: ArgumentHelp("Run one Swift side on these inputs and write its output here (used by the parent run).", visibility: .hidden))
    var child: String?

    func validate() throws {
        guard latent >= 8, threads >= 1, repeats >= 0 else {
            throw ValidationError("--threads must be at least 1, --latent at least 8, --repeats at least 0")
        }
    }

    /// The precisions to time, each checked against this CPU.
    func precisions() throws -> [Precision] {
        let chosen = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : precision
        for precision in chosen { try precision.checkSupported() }
        return chosen
    }

    /// The child's inputs and output (`--child INPUTS:OUTPUT`) and its one precision.
    func childRun() throws -> (inputs: URL, output: URL, precision: Precision)? {
        guard let child else { return nil }
        let parts = child.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let precision = precision.first else { throw ValidationError("--child takes INPUTS:OUTPUT and one --precision") }
        return (URL(fileURLWithPath: parts[0]), URL(fileURLWithPath: parts[1]), precision)
    }

    /// The run these options ask `ptp bench COMMAND` for; its children run this executable
    /// again with the same options (and --child and --precision).
    func comparison(_ command: String, batch: Int) throws -> ComparisonRun {
        ComparisonRun(model: URL(fileURLWithPath: model), batch: batch, latent: latent, threads: threads, repeats: repeats,
                      precisions: try precisions(), python: python, swiftOnly: swiftOnly, openVINO: openVINO,
                      executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath(),
                      childArguments: ["bench", command, "--model", model, "--batch", String(batch), "--latent", String(latent),
                                       "--threads", String(threads), "--repeats", String(repeats)])
    }
}

/// One UNet forward in Swift, PyTorch and optionally OpenVINO, fp32 and bf16, on the same
/// weights and inputs (`UNetComparison`).
struct UNetBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "One UNet forward in Swift, PyTorch and (--openvino) OpenVINO, fp32 and bf16: wall time, ratios, GFLOP/s, peak memory, error against PyTorch fp32.",
        discussion: """
            The model is a diffusers directory, for example the full-size SD 1.5 architecture with random weights \
            written by `$(scripts/python-env) reference/make_sd15.py .cache/sd15-random`, or SDXL's by \
            `reference/make_sdxl.py .cache/sdxl-random` (with --latent 128 for 1024 px). Each side and precision runs \
            in its own process (so peak memory is its own); the PyTorch side runs reference/bench_pytorch.py with the \
            Python given by --python (default: scripts/python-env), with weights and inputs in torch.bfloat16 for bf16; \
            the OpenVINO side reference/bench_openvino.py, which converts the module once (float32 weights) and runs it \
            with INFERENCE_PRECISION_HINT f32 or bf16.
            """)

    @OptionGroup var options: ComponentBenchmarkOptions

    @Option(help: "Batch size (2: one prompt with guidance).")
    var batch: Int = 2

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        ComputeThreads.setThreadCount(options.threads)
        if let child = try options.childRun() {
            return try UNetComparison.runChild(model: URL(fileURLWithPath: options.model), inputs: child.inputs, output: child.output,
                                               precision: child.precision, repeats: options.repeats)
        }
        print(try UNetComparison(options.comparison("unet", batch: batch)).report())
    }
}

/// One VAE decode in Swift, PyTorch and optionally OpenVINO, fp32 and bf16 (`DecoderComparison`).
struct DecoderBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae",
        abstract: "One VAE decode in Swift, PyTorch and (--openvino) OpenVINO, fp32 and bf16: wall time, ratios, GFLOP/s, peak memory, error against PyTorch fp32.",
        discussion: """
            Latents of the model's latent channels at --latent (64: a 512 px picture for SD 1.5), random of the scale \
            a sampled image has; each side and precision in a process of its own, as `ptp bench unet`.
            """)

    @OptionGroup var options: ComponentBenchmarkOptions

    @Option(help: "Pictures decoded together (1, as an edit decodes them).")
    var batch: Int = 1

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        ComputeThreads.setThreadCount(options.threads)
        if let child = try options.childRun() {
            return try DecoderComparison.runChild(model: URL(fileURLWithPath: options.model), inputs: child.inputs, output: child.output,
                                                  precision: child.precision, repeats: options.repeats)
        }
        print(try DecoderComparison(options.comparison("vae", batch: batch)).report())
    }
}
