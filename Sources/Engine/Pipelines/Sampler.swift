import EditContract
import Foundation

/// One UNet evaluation within a denoising step, as a controller sees it.
struct UNetPass: Sendable {
    /// Sampling step, 0 for the first (noisiest).
    let step: Int
    let totalSteps: Int
    /// Batch rows holding the prompts' conditional halves, prompt 0 first (empty in the
    /// unconditional pass of low-memory mode).
    let conditionalRows: Range<Int>
    /// Batch rows holding the prompts' unconditional halves, prompt 0 first (empty without
    /// guidance, and in the conditional pass of low-memory mode).
    var unconditionalRows: Range<Int> = 0..<0
}

/// What Prompt-to-Prompt needs from the sampling loop besides attention: where each UNet pass
/// is, and the latents after each step (LocalBlend edits them).
protocol SamplingController: AttentionController {
    func beginPass(_ pass: UNetPass)
    /// After the scheduler's step `step`; may change the latents [prompts, C, h, w].
    func endStep(_ step: Int, latents: inout Tensor)
}

/// Settings of one denoising run.
public struct SamplingSettings: Sendable, Equatable {
    public var steps: Int
    public var guidance: Float
    var seed: UInt64
    public var height: Int
    public var width: Int
    /// Runs the unconditional and conditional halves as two UNet calls (half the activations).
    var lowMemory: Bool = false
    /// Truncate prompts over the tokenizer's limit instead of refusing them.
    var truncatePrompts: Bool = false
    /// The arithmetic of the models' heavy layers.
    public var precision: Precision = .fp32
    /// The scheduler (nil: the model's own).
    var scheduler: SchedulerChoice?
    /// The prompt of guidance's unconditional half: nil for none (the empty prompt, or zeros
    /// where the model asks for them, as SDXL does).
    var negativePrompt: String?
    /// SDXL's size and crop conditioning (refused by other models when given).
    var sizeConditioning = SizeConditioning()
    /// How an ancestral scheduler's per-step noise is drawn for several prompts.
    var ancestralNoise: AncestralNoise = .shared

    /// `originalSize` ([height, width]) and `cropsCoordsTopLeft` ([top, left]) are SDXL's size
    /// conditioning, as an edit spec's `original_size` and `crops_coords_top_left`.
    public init(steps: Int, guidance: Float, seed: UInt64, height: Int, width: Int, lowMemory: Bool = false, truncatePrompts: Bool = false,
                precision: Precision = .fp32, scheduler: SchedulerChoice? = nil, negativePrompt: String? = nil,
                originalSize: [Int]? = nil, cropsCoordsTopLeft: [Int]? = nil) {
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.height = height
        self.width = width
        self.lowMemory = lowMemory
        self.truncatePrompts = truncatePrompts
        self.precision = precision
        self.scheduler = scheduler
        self.negativePrompt = negativePrompt
        self.sizeConditioning = SizeConditioning(originalSize: originalSize, cropTopLeft: cropsCoordsTopLeft)
    }
}

/// The denoising loop shared by text-to-image and Prompt-to-Prompt editing: every prompt of a
/// batch starts from the same noise (one draw of the seed, broadcast), classifier-free guidance
/// with the empty prompt (or embedded in the UNet), one UNet call per step of the scheduler
/// (DDIM, DPM-Solver++, Euler, Euler ancestral or LCM).
public struct Sampler: Sendable {
    let model: DiffusionModel

    public init(model: DiffusionModel) { self.model = model }

    /// Checks the settings against the model, naming the field at fault.
    func validate(_ settings: SamplingSettings) throws {
        // The VAE needs whole latent pixels; diffusers also requires multiples of 8.
        let minimum = max(8, model.latentScale)
        for (field, value) in [("height", settings.height), ("width", settings.width)] {
            guard value >= minimum, value % minimum == 0, value <= EditSpec.maximumImageSide else {
                throw EditError(field: field, problem: "\(value) px does not fit this model",
                                    fix: "use a positive multiple of \(minimum) up to \(EditSpec.maximumImageSide) (for example \(model.defaults.height))")
            }
        }
        let scheduler = try self.scheduler(settings)
        guard scheduler.supports(steps: settings.steps) else {
            throw EditError(field: "steps", problem: "\(settings.steps) cannot be run by \(scheduler.className) with this model's configuration",
                                fix: "use 1 to \(scheduler.maximumSteps) (some spacings skip counts near the limit)")
        }
        try SDXLConditioning.check(settings.sizeConditioning, on: model.sdxl)
        guard settings.guidance.isFinite, settings.guidance >= 0 else {
            throw EditError(field: "guidance", problem: "\(settings.guidance) is not a usable scale", fix: "use a number >= 0 (1 or less disables guidance)")
        }
        do { try settings.precision.checkSupported() } catch {
            throw EditError(field: "precision", problem: "\(settings.precision) cannot run on this CPU (\(OneDNN.instructionSetName))",
                                fix: "use fp32 (bf16 needs AVX512-BF16 or AMX)")
        }
    }

    /// The scheduler of `settings`, refused by field when it does not fit the model.
    func scheduler(_ settings: SamplingSettings) throws -> NoiseScheduler {
        do { return try model.scheduler(for: settings.scheduler) } catch let error as ModelDirectoryError {
            throw EditError(field: "scheduler", problem: "\(settings.scheduler.map(\.description) ?? "the model's scheduler") cannot run: \(error.problem)",
                                fix: error.fix)
        } catch let error as EditError {
            throw EditError(field: error.field, problem: error.problem, fix: error.fix)
        }
    }

    /// The conditioning of `prompts` at `settings`' size.
    func conditioning(_ prompts: [String], settings: SamplingSettings) throws -> TextConditioning {
        try model.conditioning(prompts, truncate: settings.truncatePrompts, precision: settings.precision, size: settings.sizeConditioning,
                               height: settings.height, width: settings.width)
    }

    /// Guidance's unconditional half for `count` prompts: the negative prompt, or the empty
    /// one, or zeros where the model asks for them without a negative prompt (SDXL).
    func unconditional(like conditional: TextConditioning, settings: SamplingSettings) throws -> TextConditioning {
        if settings.negativePrompt == nil && model.sdxl?.forceZerosForEmptyPrompt == true { return conditional.zeroed }
        return try conditioning([settings.negativePrompt ?? ""], settings: settings).repeated(conditional.count)
    }

    /// The shape of one prompt's latents [1, C, h, w].
    func latentShape(_ settings: SamplingSettings) -> [Int] {
        [1, model.sampleChannels, settings.height / model.latentScale, settings.width / model.latentScale]
    }

    /// The seed's starting noise for one prompt: [1, C, h, w], as torch.randn with a generator.
    func initialNoise(_ settings: SamplingSettings) -> Tensor {
        var generator = TorchGenerator(seed: settings.seed)
        return generator.normal(latentShape(settings))
    }

    /// Denoises `prompts` together from `start` (default: the seed's noise, shared by all) and
    /// returns the final latents (or pixels, for pixel-space models) [prompts, C, h, w].
    /// `releasingTextEncoders`: the run encodes no more prompts, so the text encoders' packed
    /// weights are returned once these are encoded, before the denoising loop.
    func sample(
        prompts: [String], settings: SamplingSettings, start: Tensor? = nil,
        controller: SamplingController? = nil, releasingTextEncoders: Bool = false, progress: ((Int, Int) -> Void)? = nil
    ) throws -> Tensor {
        try validate(settings)
        guard !prompts.isEmpty else { throw EditError(field: "prompts", problem: "none given", fix: "give at least one prompt") }
        let count = prompts.count
        let precision = settings.precision
        let conditional = try conditioning(prompts, settings: settings)
        // As diffusers: guidance only above 1 (a scale of 1 or less is the conditional prediction),
        // and none for a UNet that takes the scale as an input (LCM's `time_cond_proj_dim`): one
        // row per prompt, the scale's embedding beside the timestep.
        let embeddedGuidance = model.unet.configuration.guidanceEmbeddingWidth.map {
            guidanceScaleEmbedding(Array(repeating: settings.guidance - 1, count: count), width: $0)
        }
        let guided = settings.guidance > 1 && embeddedGuidance == nil
        let unconditional = guided ? try self.unconditional(like: conditional, settings: settings) : conditional
        if releasingTextEncoders { model.releaseTextEncoderWeights() }
        var run = try scheduler(settings).start(steps: settings.steps)
        // One generator for the start and, for an ancestral scheduler, each step's fresh noise,
        // as diffusers' pipelines pass theirs to both.
        var generator = TorchGenerator(seed: settings.seed)
        var latents = (start ?? generator.normal(latentShape(settings))).repeated(count / (start?.shape[0] ?? 1))
        if start == nil && run.initialNoiseSigma != 1 {
            let sigma = run.initialNoiseSigma
            latents = latents.mapElements { $0 * sigma }
        }
        let timesteps = run.timesteps
        for (step, time) in timesteps.enumerated() {
            let input = run.scaleInput(latents, step: step)
            var prediction: Tensor
            if !guided {
                controller?.beginPass(UNetPass(step: step, totalSteps: timesteps.count, conditionalRows: 0..<count))
                prediction = model.unet(input, timesteps: Array(repeating: time, count: count), context: conditional.context,
                                        added: conditional.added, timestepCondition: embeddedGuidance, precision: precision, controller: controller)
            } else if settings.lowMemory {
                controller?.beginPass(UNetPass(step: step, totalSteps: timesteps.count, conditionalRows: 0..<0, unconditionalRows: 0..<count))
                let uncond = model.unet(input, timesteps: Array(repeating: time, count: count), context: unconditional.context,
                                        added: unconditional.added, precision: precision, controller: controller)
                controller?.beginPass(UNetPass(step: step, totalSteps: timesteps.count, conditionalRows: 0..<count))
                let cond = model.unet(input, timesteps: Array(repeating: time, count: count), context: conditional.context,
                                      added: conditional.added, precision: precision, controller: controller)
                prediction = Self.guide(unconditional: uncond, conditional: cond, scale: settings.guidance)
            } else {
                controller?.beginPass(UNetPass(step: step, totalSteps: timesteps.count, conditionalRows: count..<(2 * count),
                                               unconditionalRows: 0..<count))
                let halves = TextConditioning.concatenate([unconditional, conditional])
                let pair = model.unet(Tensor.concatenate([input, input], axis: 0), timesteps: Array(repeating: time, count: 2 * count),
                                             context: halves.context, added: halves.added, precision: precision, controller: controller)
                prediction = Self.guide(unconditional: pair.slice(0..<count), conditional: pair.slice(count..<(2 * count)),
                                        scale: settings.guidance)
            }
            if run.drawsNoise(atStep: step) {
                var shape = latentShape(settings)
                if settings.ancestralNoise == .independent { shape[0] = count }
                let noise = generator.normal(shape)
                latents = run.step(prediction, step: step, sample: latents, noise: shape[0] == count ? noise : noise.repeated(count))
            } else {
                latents = run.step(prediction, step: step, sample: latents)
            }
            controller?.endStep(step, latents: &latents)
            progress?(step + 1, timesteps.count)
        }
        guard latents.allFinite else {
            throw EditError(field: "model", problem: "produced values that are not finite (NaN or infinity)",
                                fix: "check the model's weights (a float16 overflow?) and the guidance scale")
        }
        return latents
    }

    /// eps = uncond + g (cond - uncond)
    static func guide(unconditional: Tensor, conditional: Tensor, scale: Float) -> Tensor {
        unconditional.zipElements(conditional) { $0 + scale * ($1 - $0) }
    }

    /// Final latents to images [prompts, 3, H, W] in [-1, 1] (the VAE decode, or the pixels
    /// themselves for pixel-space models).
    func decode(_ latents: Tensor, precision: Precision) -> Tensor {
        guard let autoencoder = model.autoencoder else { return latents }
        // One image at a time: at 512 px the decoder's activations dominate memory.
        let images = (0..<latents.shape[0]).map { index in
            autoencoder.decode(latents.slice(index..<(index + 1)) / autoencoder.configuration.scalingFactor, precision: precision)
        }
        return images.count == 1 ? images[0] : Tensor.concatenate(images, axis: 0)
    }
}

extension Sampler {
    /// Text to image as diffusers' StableDiffusionPipeline with the same scheduler: [1, 3, H, W]
    /// in [-1, 1]. `releasingWeights`: the process's last image (`ptp generate`), so the text
    /// encoders' and the UNet's packed weights are returned once each is done.
    public func generate(prompt: String, settings: SamplingSettings, releasingWeights: Bool = false,
                         progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        let latents = try sample(prompts: [prompt], settings: settings, releasingTextEncoders: releasingWeights, progress: progress)
        if releasingWeights { model.releaseDenoiserWeights() }
        return decode(latents, precision: settings.precision)
    }
}
