import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation
import Imaging

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Text to image: one prompt, one seed, one PNG.",
        discussion: """
            Runs as diffusers' StableDiffusionPipeline with the model's scheduler (DDIM, DPM-Solver++, Euler or Euler ancestral, from \
            scheduler/scheduler_config.json) or the one --scheduler names. Settings not given come from the model's recommendations.
            """)

    @Option(help: "A diffusers-format model directory (default: the embedded shapes-world model).")
    var model: String?

    @Option(help: ArgumentHelp("A LoRA file fused into the model's UNet and text encoders at load, at a scale (default 1): diffusers/PEFT or kohya layout, e.g. an LCM-LoRA. Repeat for several.",
                               valueName: "path[:scale]"))
    var lora: [String] = []

    @Option(help: "The text prompt.")
    var prompt: String

    @Option(help: "SDXL: the original size the model is told, HEIGHT,WIDTH (default: the image's size).")
    var originalSize: NumberPair?

    @Option(help: "SDXL: the crop corner the model is told, TOP,LEFT (default: 0,0).")
    var cropsCoordsTopLeft: NumberPair?

    @Option(help: "What to steer away from: guidance's unconditional prompt (default: none: the empty prompt, or zeros where the model asks, as SDXL does).")
    var negativePrompt: String?

    @Option(help: "Seed of the starting noise (torch.randn-compatible).")
    var seed: UInt64 = 0

    @Option(help: "Denoising steps (default: the model's).")
    var steps: Int?

    @Option(help: "Classifier-free guidance scale (default: the model's).")
    var guidance: Float?

    @Option(help: "Image height in pixels (default: the model's).")
    var height: Int?

    @Option(help: "Image width in pixels (default: the model's).")
    var width: Int?

    @Option(help: "Output PNG file.")
    var output: String

    @Flag(help: "Stop after the first stage of a cascade model (no super-resolution).")
    var noSuperResolution = false

    @Flag(help: "Run the two guidance halves as separate UNet calls (less memory).")
    var lowMemory = false

    @Flag(help: "Truncate prompts over the tokenizer's 77-token limit instead of refusing them.")
    var truncate = false

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Option(help: "fp32 (exact, the default) or bf16 (bfloat16 products with float32 accumulation; needs AVX512-BF16 or AMX).")
    var precision: Precision = .fp32

    @Option(help: ArgumentHelp("The scheduler: ddim, dpm++, dpm++-karras, euler, euler-karras, euler-a or a diffusers class name, with config overrides (e.g. dpm++,solver_order=3); default: the model's.",
                               valueName: "name[,key=value...]"))
    var scheduler: String?

    func run() throws {
        if let threads {
            try ComputeThreads.validate(threads)
            ComputeThreads.setThreadCount(threads)
        }
        try precision.checkSupported()
        // The seeds an edit takes (a spec's seed is a JSON integer).
        guard seed <= UInt64(Int.max) else { throw ValidationError("--seed: \(seed) is too large; give a seed from 0 to \(Int.max)") }
        let choice = try scheduler.map { try SchedulerChoice(parsing: $0) }
        let model = try ModelLocation.load(self.model, lora: lora)
        let defaults = model.defaults
        let settings = SamplingSettings(steps: steps ?? defaults.steps, guidance: guidance ?? defaults.guidance, seed: seed,
                                        height: height ?? defaults.height, width: width ?? defaults.width,
                                        lowMemory: lowMemory, truncatePrompts: truncate, precision: precision, scheduler: choice,
                                        negativePrompt: negativePrompt, originalSize: originalSize?.values,
                                        cropsCoordsTopLeft: cropsCoordsTopLeft?.values)
        let sampler = Sampler(model: model)
        let bar = ProgressBar("denoising")
        var image = try sampler.generate(prompt: prompt, settings: settings, releasingWeights: true, progress: bar.update)
        if !noSuperResolution, let stage = model.superResolution {
            // The cascade's second stage, as `ptp edit` runs it.
            let upscaler = SuperResolution(model: model, stage: stage)
            image = try upscaler.upscale(image, prompt: prompt, seed: seed, precision: precision, progress: ProgressBar("super-resolution").update)
        }
        let url = URL(fileURLWithPath: output)
        try PNGCodec.write(RGBImage(tensor: image), to: url)
        note("wrote \(url.path) (peak memory \(PeakMemory.summary))")
    }
}
