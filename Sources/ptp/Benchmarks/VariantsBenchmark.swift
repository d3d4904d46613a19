import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation

/// Dataset variants per minute on one worker against the recipe on PyTorch (`VariantComparison`).
struct VariantsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variants",
        abstract: "Seconds per dataset variant (instruct-pix2pix recipe with CLIP scoring) on one worker, and variants per minute, against the recipe on PyTorch.",
        discussion: """
            Both sides load the model and the scorer once, then time whole variants at --short-steps and --long-steps \
            (the fastest of --repeats); per step = (t(long) - t(short)) / (long - short), and a variant at --recipe-steps \
            is the rest plus that many steps. The PyTorch side is reference/bench_variant.py with the Python given by \
            --python (default: scripts/python-env).
            """)

    @Option(help: "Model directory (a diffusers StableDiffusionPipeline folder, e.g. SD 1.5's).")
    var model: String

    @Option(help: "The CLIP model folder that scores (as transformers' CLIPModel saves it, e.g. clip-vit-large-patch14).")
    var scorer: String

    @Option(help: "Image side in pixels.")
    var size = 512

    @Option(help: "Steps of the short run.")
    var shortSteps = 2

    @Option(help: "Steps of the long run.")
    var longSteps = 4

    @Option(help: "The steps variants per minute are stated at (the recipe's).")
    var recipeSteps = 100

    @Option(help: "Runs of each step count; the fastest counts.")
    var repeats = 1

    @Option(help: "Threads for both sides.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "fp32 or bf16, both sides (the recipe's peer runs bf16 where the CPU does).")
    var precision: Precision = .fp32

    @Option(help: "Python interpreter with torch, diffusers and transformers (default: from scripts/python-env).")
    var python: String?

    @Flag(help: "Skip the PyTorch side.")
    var swiftOnly = false

    func validate() throws {
        guard repeats >= 1, threads >= 1 else { throw ValidationError("--repeats and --threads must be at least 1") }
        guard shortSteps >= 1, longSteps > shortSteps, recipeSteps >= 1 else {
            throw ValidationError("--long-steps must exceed --short-steps, both and --recipe-steps at least 1")
        }
        guard size >= 64, size % 8 == 0 else { throw ValidationError("--size must be a multiple of 8 from 64") }
    }

    func run() throws {
        try VariantComparison(model: model, scorer: scorer, size: size, shortSteps: shortSteps, longSteps: longSteps, recipeSteps: recipeSteps,
                              repeats: repeats, threads: threads, precision: precision, python: python, swiftOnly: swiftOnly,
                              executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()).run { print($0) }
    }
}
