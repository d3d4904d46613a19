import Crypto
import EditContract
import Foundation

/// Settings a model directory recommends (`_ptp_defaults` in model_index.json), used by the
/// CLI when the flags are absent.
public struct RecommendedSettings: Sendable, Equatable {
    public var steps: Int
    public var guidance: Float
    public var height: Int
    public var width: Int
    var superResolutionSteps: Int
    var superResolutionGuidance: Float
    var superResolutionNoiseLevel: Int

    init(steps: Int, guidance: Float, height: Int, width: Int,
         superResolutionSteps: Int = 0, superResolutionGuidance: Float = 1, superResolutionNoiseLevel: Int = 0) {
        self.steps = steps
        self.guidance = guidance
        self.height = height
        self.width = width
        self.superResolutionSteps = superResolutionSteps
        self.superResolutionGuidance = superResolutionGuidance
        self.superResolutionNoiseLevel = superResolutionNoiseLevel
    }

    /// Stable Diffusion 1.x's usual settings (and the Prompt-to-Prompt paper's).
    static let stableDiffusion = RecommendedSettings(
        steps: 50, guidance: 7.5, height: 512, width: 512,
        superResolutionSteps: 0, superResolutionGuidance: 1, superResolutionNoiseLevel: 0)

    init(index: [String: JSONValue], file: URL, fallback: RecommendedSettings) throws {
        self = fallback
        guard let defaults = index["_ptp_defaults"] else { return }
        let config = ModelConfig(values: defaults.objectValue ?? [:], file: file)
        steps = try config.int("steps", default: fallback.steps)
        guidance = Float(try config.double("guidance", default: Double(fallback.guidance)))
        height = try config.int("height", default: fallback.height)
        width = try config.int("width", default: fallback.width)
        superResolutionSteps = try config.int("super_resolution_steps", default: fallback.superResolutionSteps)
        superResolutionGuidance = Float(try config.double("super_resolution_guidance", default: Double(fallback.superResolutionGuidance)))
        superResolutionNoiseLevel = try config.int("super_resolution_noise_level", default: fallback.superResolutionNoiseLevel)
    }
}

/// A second stage that upsamples each image: a UNet conditioned on the text and on the
/// bilinearly upsampled image (channel concatenation), with the low-resolution image's noise
/// level as a class label.
public struct SuperResolutionStage: Sendable {
    let unet: UNet2DConditionModel
    let scheduler: DDIMScheduler
    /// Output side / input side.
    public let factor: Int
}

/// A text-conditioned diffusion model loaded from a diffusers-format directory: Stable
/// Diffusion 1.x/2.x and SDXL (latent space, with a VAE), or a pixel-space cascade such as the
/// embedded shapes-world model (a base stage plus a super-resolution stage).
public struct DiffusionModel: Sendable {
    let directory: ModelDirectory
    /// The tokenizer whose tokens Prompt-to-Prompt's word indices count (SDXL's first).
    let tokenizer: CLIPTokenizer
    let textEncoder: CLIPTextModel
    let unet: UNet2DConditionModel
    /// SDXL's second tokenizer and text encoder and the UNet's text_time embedding (nil for
    /// SD 1.x and 2.x).
    let sdxl: SDXLConditioning?
    /// The scheduler the model's scheduler_config.json names (`_class_name`); a class this engine
    /// does not implement (PNDM, LMS...) is run as DDIM with the same configuration, as
    /// Prompt-to-Prompt runs Stable Diffusion, and `schedulerNote` says so.
    let scheduler: NoiseScheduler
    let schedulerNote: String?
    /// The scheduler configuration, which other schedulers are configured from (`SchedulerChoice`).
    let schedulerConfig: ModelConfig
    /// DDIM from the same configuration: real images are inverted and edited with it.
    let ddim: DDIMScheduler
    /// nil for pixel-space models.
    let autoencoder: AutoencoderKL?
    public let superResolution: SuperResolutionStage?
    /// The packed weights of the text encoders and of the UNet, which a run that uses them for
    /// the last time returns (`releaseTextEncoderWeights`, `releaseDenoiserWeights`).
    let textEncoderWeights, denoiserWeights: PackedWeightGroup
    public let defaults: RecommendedSettings
    /// Names the model in provenance records: the folder name and a hash of its index and configs.
    public let identifier: String

    /// Loads the model folder at `url`, with the updates of `lora` files (diffusers/PEFT or
    /// kohya layout, each at its scale) fused into the UNet's and text encoders' weights.
    public init(directory url: URL, lora: [LoRAChoice] = []) throws {
        let directory = try ModelDirectory(url: url)
        self.directory = directory
        var weightShapes: [String: [String: [Int]]] = [:]
        if !lora.isEmpty {
            for name in ["unet", "text_encoder", "text_encoder_2"] where directory.components[name] != nil {
                weightShapes[name] = try directory.component(name).weights().entries.mapValues(\.shape)
            }
        }
        let updates = try LoRAUpdates(lora, weightShapes: weightShapes)
        tokenizer = try CLIPTokenizer(files: directory.tokenizerFiles())
        let (textEncoderWeights, denoiserWeights) = (PackedWeightGroup(), PackedWeightGroup())
        (self.textEncoderWeights, self.denoiserWeights) = (textEncoderWeights, denoiserWeights)
        textEncoder = try textEncoderWeights.collecting {
            try CLIPTextModel(component: directory.component("text_encoder", supportedClasses: ["CLIPTextModel"]),
                              updates: updates.deltas["text_encoder"] ?? [:])
        }
        let unet = try denoiserWeights.collecting {
            try UNet2DConditionModel(component: directory.component("unet", supportedClasses: ["UNet2DConditionModel"]),
                                     updates: updates.deltas["unet"] ?? [:])
        }
        self.unet = unet
        sdxl = try textEncoderWeights.collecting {
            try SDXLConditioning.load(from: directory, unet: unet.configuration, updates: updates.deltas["text_encoder_2"] ?? [:])
        }
        schedulerConfig = try directory.component("scheduler").config
        ddim = try DDIMScheduler(schedulerConfig)
        let schedulerClass = try schedulerConfig.optionalString("_class_name") ?? "DDIMScheduler"
        if NoiseScheduler.classNames.contains(schedulerClass) {
            scheduler = try NoiseScheduler(className: schedulerClass, config: schedulerConfig)
            schedulerNote = nil
        } else {
            scheduler = .ddim(ddim)
            schedulerNote = "the model's \(schedulerClass) is not implemented; DDIM runs with its configuration"
        }
        if directory.components["vae"] != nil {
            autoencoder = try AutoencoderKL(component: directory.component("vae", supportedClasses: ["AutoencoderKL"]))
        } else {
            autoencoder = nil
        }
        if directory.components["super_resolution_unet"] != nil {
            let srUNet = try UNet2DConditionModel(component: directory.component("super_resolution_unet", supportedClasses: ["UNet2DConditionModel"]))
            let srScheduler = try DDIMScheduler(directory.component("super_resolution_scheduler").config)
            let factor = try ModelConfig(values: directory.index, file: url.appendingPathComponent("model_index.json"))
                .size("_ptp_super_resolution_factor", default: 4)
            superResolution = SuperResolutionStage(unet: srUNet, scheduler: srScheduler, factor: factor)
        } else {
            superResolution = nil
        }
        let indexFile = url.appendingPathComponent("model_index.json")
        let fallback = autoencoder == nil
            ? RecommendedSettings(steps: 50, guidance: 5, height: 32, width: 32, superResolutionSteps: 20, superResolutionGuidance: 1, superResolutionNoiseLevel: 0)
            : .stableDiffusion
        defaults = try RecommendedSettings(index: directory.index, file: indexFile, fallback: fallback)
        let contextWidth = textEncoder.configuration.width + (sdxl?.encoder.configuration.width ?? 0)
        guard contextWidth == unet.configuration.crossAttentionWidth else {
            throw ModelDirectoryError(path: url.path, problem: "has text encoders of width \(contextWidth) but a UNet attending to \(unet.configuration.crossAttentionWidth)",
                                      fix: "use components that belong together")
        }
        try Self.check(tokenizer, fits: textEncoder, url: url)
        try Self.checkRecommendations(defaults, scheduler: scheduler, superResolution: superResolution, url: url)
        identifier = url.standardizedFileURL.lastPathComponent + "@" + (try Self.fingerprint(of: url, lora: lora))
    }

    /// Refuses a tokenizer whose tokens `encoder` cannot take, which would otherwise fail
    /// mid-run: ids past its embedding table, prompts longer than its positions.
    static func check(_ tokenizer: CLIPTokenizer, fits encoder: CLIPTextModel, url: URL) throws {
        let largestId = tokenizer.vocabulary.values.max() ?? 0
        let configuration = encoder.configuration
        guard largestId < configuration.vocabularySize else {
            throw ModelDirectoryError(path: url.path, problem: "has a tokenizer with token id \(largestId) but a text encoder of vocab_size \(configuration.vocabularySize)",
                                      fix: "use the tokenizer that belongs to the text encoder")
        }
        guard tokenizer.maximumLength <= configuration.positions else {
            throw ModelDirectoryError(path: url.path, problem: "has a tokenizer of \(tokenizer.maximumLength) tokens but a text encoder of \(configuration.positions) positions",
                                      fix: "set the tokenizer's model_max_length to at most max_position_embeddings")
        }
    }

    /// Refuses recommended step counts or noise levels the schedulers cannot run.
    static func checkRecommendations(_ defaults: RecommendedSettings, scheduler: NoiseScheduler, superResolution: SuperResolutionStage?,
                                     url: URL) throws {
        let index = url.appendingPathComponent("model_index.json").path
        guard scheduler.supports(steps: defaults.steps) else {
            throw ModelDirectoryError(path: index, problem: "recommends \(defaults.steps) steps", fix: "use 1 to \(scheduler.maximumSteps) in _ptp_defaults.steps")
        }
        if let stage = superResolution {
            guard stage.scheduler.supports(steps: defaults.superResolutionSteps) else {
                throw ModelDirectoryError(path: index, problem: "recommends \(defaults.superResolutionSteps) super-resolution steps",
                                          fix: "use 1 to \(stage.scheduler.maximumSteps) in _ptp_defaults.super_resolution_steps")
            }
            guard (0..<stage.scheduler.trainTimesteps).contains(defaults.superResolutionNoiseLevel) else {
                throw ModelDirectoryError(path: index, problem: "recommends noise level \(defaults.superResolutionNoiseLevel)",
                                          fix: "use 0 to \(stage.scheduler.trainTimesteps - 1) in _ptp_defaults.super_resolution_noise_level")
            }
        }
    }

    /// The scheduler `choice` asks for, configured from this model's scheduler configuration
    /// (the model's own scheduler for nil).
    func scheduler(for choice: SchedulerChoice?) throws -> NoiseScheduler {
        guard let choice else { return scheduler }
        return try choice.scheduler(from: schedulerConfig)
    }

    /// Returns the memory of the text encoders' packed weights (an SDXL's two hold 1.4 GB in
    /// bf16), for a run that encodes no more prompts; they are packed again if it does. Never
    /// while a prompt is being encoded.
    func releaseTextEncoderWeights() { textEncoderWeights.release() }

    /// Returns the memory of the UNet's packed weights (an SDXL's hold 5.1 GB in bf16), for a
    /// run whose denoising is over (the VAE decode then runs without them). Never while the
    /// UNet runs.
    func releaseDenoiserWeights() { denoiserWeights.release() }

    /// How many image pixels per latent pixel, per side (1 for pixel-space models).
    var latentScale: Int { autoencoder?.configuration.downscale ?? 1 }

    /// Channels of the sampled tensor.
    var sampleChannels: Int { unet.configuration.outChannels }

    /// The first 16 hex digits of a SHA-256 over the files the model is loaded from (JSON
    /// configurations, tokenizer text files, safetensors weights; not a model card or sample
    /// pictures), each as its relative path then its bytes, in path order: retrained weights of
    /// the same shapes get another identifier. Files are read in 8 MiB pieces (about a second
    /// for Stable Diffusion's 2 GB in float16).
    /// LoRA files follow, each as its scale then its bytes.
    static func fingerprint(of url: URL, lora: [LoRAChoice] = []) throws -> String {
        var hasher = SHA256()
        let manager = FileManager.default
        let files = (manager.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])?.compactMap { $0 as? URL } ?? [])
            .filter { ["json", "txt", "safetensors"].contains($0.pathExtension) }
            .filter { (try? $0.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true }
            .sorted { $0.path < $1.path }
        let loraFiles = lora.map { (URL(fileURLWithPath: $0.path), "lora \($0.scale)") }
        for (file, name) in files.map({ ($0, String($0.path.dropFirst(url.path.count))) }) + loraFiles {
            hasher.update(data: Data(name.utf8 + [0]))
            let handle: FileHandle
            do { handle = try FileHandle(forReadingFrom: file) } catch {
                throw ModelDirectoryError(path: file.path, problem: "cannot be read (\(error))", fix: "check the model folder's permissions")
            }
            defer { try? handle.close() }
            while let piece = try handle.read(upToCount: 8 << 20), !piece.isEmpty { hasher.update(data: piece) }
        }
        return hasher.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}
