import EditContract
import Foundation
import Imaging

/// The outcome of one edit.
public struct EditResult: Sendable {
    let spec: EditSpec
    /// Source first, then the edited prompts.
    let prompts: [String]
    /// Final images, one per prompt (after super-resolution when run).
    public let images: [RGBImage]
    /// The first stage's output [prompts, C, h, w] (latents, or pixels for pixel models).
    let stageOne: Tensor
    /// Per prompt, the average cross-attention map of each token at the visualisation
    /// resolution (when requested).
    public let attention: [TokenAttention]?
    public let settings: SamplingSettings
    public let mode: EditMode
    /// The scheduler that ran, as `SchedulerChoice` writes it (class and overrides).
    public let scheduler: String
    public let seconds: Double
}

/// Per-token average cross-attention of one prompt.
public struct TokenAttention: Sendable {
    let prompt: String
    /// Token texts, BOS and EOS included.
    let tokens: [String]
    /// One [height * width] map per token.
    let maps: [[Float]]
    let grid: AttentionGrid
}

/// Runs Prompt-to-Prompt edits: the source and edited prompts in one batch from one noise
/// draw, under attention control. Single-machine `ptp edit` and cluster workers both call this.
public struct PromptToPromptEditor: Sendable {
    let model: DiffusionModel

    public init(model: DiffusionModel) { self.model = model }

    /// The sampling settings of `spec`, the model's recommendations filling the gaps.
    func settings(for spec: EditSpec, picture: RGBImage? = nil, lowMemory: Bool = false) -> SamplingSettings {
        let d = model.defaults
        let size = picture.map(editSize(of:)) ?? (d.height, d.width)
        // A real image is inverted with DDIM, and edited with it, whatever the model's scheduler.
        let scheduler = spec.image != nil && spec.scheduler == nil ? SchedulerChoice(className: "DDIMScheduler") : spec.scheduler
        var settings = SamplingSettings(steps: spec.steps ?? d.steps, guidance: Float(spec.guidance ?? Double(d.guidance)), seed: spec.seed,
                                        height: spec.height ?? size.0, width: spec.width ?? size.1, lowMemory: lowMemory, precision: spec.precision,
                                        scheduler: scheduler,
                                        // Negative-prompt inversion: the source prompt stands where null-text inversion's optimised embeddings would.
                                        negativePrompt: spec.image != nil && spec.inversion == .negativePrompt ? spec.source : spec.negativePrompt,
                                        originalSize: spec.originalSize, cropsCoordsTopLeft: spec.cropsCoordsTopLeft)
        settings.ancestralNoise = spec.ancestralNoise
        return settings
    }

    /// Everything about `spec` that needs the model: prompt lengths, that every blend, reweight
    /// and per-word word is in its prompt, and its settings (`Sampler.validate`). The spec's own
    /// checks (`EditSpec.validate`) are its maker's: decoding one from JSON runs them.
    func validate(_ spec: EditSpec, picture: RGBImage? = nil, mask: RGBImage? = nil) throws {
        for (field, named, given) in [("image", spec.image, picture), ("mask", spec.mask, mask)] {
            switch (named, given) {
            case (.some, nil):
                throw EditError(field: field, problem: "names a picture, but its contents were not given with the edit",
                                fix: "read the file where it is (ptp edit and ptp submit do) and pass the picture")
            case (nil, .some):
                throw EditError(field: field, problem: "is not set, but a picture was given with the edit for it", fix: "name the picture in the spec's \(field)")
            default: break
            }
        }
        let tokenizer = model.tokenizer
        let fields = ["source"] + spec.targets.indices.map { "targets[\($0)]" } + (spec.negativePrompt != nil ? ["negative_prompt"] : [])
        for (field, prompt) in zip(fields, spec.prompts + [spec.negativePrompt].compactMap { $0 }) {
            let tokens = tokenizer.encode(prompt)
            let count = tokens.count + 2
            if count > tokenizer.maximumLength {
                throw EditError(field: field,
                                problem: "is \(count) tokens, over the model's limit of \(tokenizer.maximumLength)", fix: "shorten the prompt")
            }
            try model.sdxl?.checkSplitsAlike(prompt, as: tokens, field: field)
        }
        let words = spec.prompts.map { PromptWords($0, tokenizer: tokenizer) }
        for (field, lists) in [("blend", spec.blend), ("blend_subtract", spec.blendSubtract)] {
            guard let lists else { continue }
            for (index, list) in lists.enumerated() {
                for word in list where words[index].tokens(of: word).isEmpty {
                    throw EditError(field: "\(field)[\(index)]", problem: "'\(word)' is not a word of \"\(spec.prompts[index])\"",
                                    fix: "use words of that prompt (matched ignoring case and trailing punctuation)")
                }
            }
        }
        // Each edited prompt has its own equalizer: a word reweights the prompts that have it
        // (with several targets, "yellow" may be in only one of them), but must be in one.
        for word in spec.reweight.keys.sorted() where words.dropFirst().allSatisfy({ $0.tokens(of: word).isEmpty }) {
            let prompts = spec.targets.count == 1 ? "targets[0] \"\(spec.targets[0])\"" : "any of the edited prompts"
            throw EditError(field: "reweight.\(word)", problem: "'\(word)' is not a word of \(prompts)",
                            fix: "reweight words of the edited prompts (matched ignoring case and trailing punctuation)")
        }
        for word in spec.crossReplace.words.keys.sorted() where words.dropFirst().allSatisfy({ $0.tokens(of: word).isEmpty }) {
            throw EditError(field: "cross_replace.\(word)", problem: "'\(word)' is in none of the edited prompts", fix: "name a word of an edited prompt, or remove it")
        }
        if spec.resolvedMode == .replace {
            for target in words.dropFirst() { _ = try ReplacementMatrix(source: words[0], target: target, length: tokenizer.maximumLength) }
        }
        let settings = settings(for: spec, picture: picture)
        try Sampler(model: model).validate(settings)
        if picture != nil { _ = try inversionTimesteps(settings) }
    }

    /// The grid of the cross-attention layers LocalBlend and the attention pictures read: the
    /// first level with cross-attention at a quarter of the latent's size or smaller, as
    /// Prompt-to-Prompt reads SD's 16x16 layers of a 64x64 latent (16x24 for a 64x96 one), else
    /// the deepest level this UNet has cross-attention at.
    func attentionGrid(latentHeight: Int, latentWidth: Int) throws -> AttentionGrid {
        let types = model.unet.configuration.downBlockTypes
        let levels = types.indices.filter { types[$0] == UNetConfiguration.crossDown }
        guard let deepest = levels.max() else {
            throw EditError(field: "model", problem: "its UNet has no cross-attention in its down and up blocks", fix: "use a text-conditioned UNet with cross-attention")
        }
        return AttentionGrid(latentHeight: latentHeight, latentWidth: latentWidth, level: levels.filter { $0 >= 2 }.min() ?? deepest)
    }

    /// The attention grid of `settings`' latent.
    func attentionGrid(_ settings: SamplingSettings) throws -> AttentionGrid {
        try attentionGrid(latentHeight: settings.height / model.latentScale, latentWidth: settings.width / model.latentScale)
    }

    /// The attention controller for `spec` (nil for the baseline without attention pictures).
    func controller(for spec: EditSpec, settings: SamplingSettings, storeAttention: Bool) throws -> SamplingController? {
        let tokenizer = model.tokenizer
        let words = spec.prompts.map { PromptWords($0, tokenizer: tokenizer) }
        let (latentHeight, latentWidth) = (settings.height / model.latentScale, settings.width / model.latentScale)
        let blendGrid = try attentionGrid(settings)
        // Prompt-to-Prompt's limits at SD's 64x64 latent (store up to 32x32 queries, inject self-
        // attention up to 16x16), scaled with the latent's size and shape.
        // Maps are kept only for what reads them: the attention pictures (every layer up to the
        // limit), LocalBlend (its grid), or nothing (at SDXL's 1024 px the stored sums of every
        // layer up to 64x64 take about 1 GB).
        let storeLimit = AttentionGrid(latentHeight: latentHeight, latentWidth: latentWidth, level: 1).queries
        let store = AttentionStore(maximumQueries: storeAttention ? max(storeLimit, blendGrid.queries) : spec.blend != nil ? blendGrid.queries : 0)
        let mode = spec.resolvedMode
        if mode == .none {
            return storeAttention ? AttentionStoringController(store: store) : nil
        }
        let ids = spec.prompts.map { [tokenizer.startToken] + tokenizer.encode($0) + [tokenizer.endToken] }
        var edit: CrossAttentionEdit?
        switch mode {
        case .replace:
            edit = .replace(try words.dropFirst().map { try ReplacementMatrix(source: words[0], target: $0, length: tokenizer.maximumLength) })
        case .refine:
            edit = .refine(ids.dropFirst().map { TokenAlignment(source: ids[0], target: $0, length: tokenizer.maximumLength) })
        case .reweight, .none, .auto:
            edit = nil
        }
        if !spec.reweight.isEmpty {
            let equalizers = words.dropFirst().map { target -> [Float] in
                var equalizer = [Float](repeating: 1, count: tokenizer.maximumLength)
                for (word, weight) in spec.reweight {
                    for token in target.tokens(of: word) where token < equalizer.count { equalizer[token] = Float(weight) }
                }
                return equalizer
            }
            edit = .reweight(equalizers: equalizers, base: edit)
        }
        let alpha = spec.crossReplace
            .table(steps: settings.steps, targets: Array(words.dropFirst()), length: tokenizer.maximumLength)
        // No step takes any of the source's cross-attention and nothing is reweighted: the maps
        // need not be read at all (the InstructPix2Pix recipe shares self-attention only).
        if spec.reweight.isEmpty && alpha.allSatisfy({ $0.allSatisfy { $0.allSatisfy { $0 == 0 } } }) { edit = nil }
        // Each token once, however many times its word is listed.
        func tokens(_ lists: [[String]]) -> [[Int]] {
            lists.enumerated().map { index, list in Array(Set(list.flatMap { words[index].tokens(of: $0) })).sorted() }
        }
        let blend = spec.blend.map { lists in
            LocalBlend(words: tokens(lists), subtractWords: spec.blendSubtract.map(tokens),
                       threshold: Float(spec.blendThreshold), subtractThreshold: Float(spec.blendSubtractThreshold),
                       startStep: Int(spec.startBlend * Double(settings.steps)), grid: blendGrid)
        }
        let recipe = spec.selfReplaceVariant == .instructPix2Pix
        // Prompt-to-Prompt injects at small resolutions only; the recipe in every layer.
        let injectLimit = recipe ? Int.max : spec.selfReplaceSide.map { $0 * $0 }
            ?? AttentionGrid(latentHeight: latentHeight, latentWidth: latentWidth, level: 2).queries
        return PromptToPromptController(prompts: spec.prompts.count, edit: edit, crossAlpha: alpha,
                                        selfSteps: recipe ? spec.selfReplace.sharingSteps(of: settings.steps) : spec.selfReplace.steps(of: settings.steps),
                                        selfMaximumQueries: injectLimit, selfInBothHalves: recipe, store: store, localBlend: blend,
                                        spatialReplaceUntil: spec.spatialReplace.map { Int((1 - $0) * Double(settings.steps)) })
    }

    /// Stage 1 of an edit: every prompt denoised together under attention control.
    public struct StageOne: Sendable {
        /// [prompts, C, h, w]: latents, or pixels for pixel-space models.
        public let output: Tensor
        public let settings: SamplingSettings
        let attention: [TokenAttention]?
        public let seconds: Double
        /// The scheduler that ran, as `SchedulerChoice` writes it (class and overrides).
        public let scheduler: String
        /// How a real picture's inversion was had; nil for a generated edit.
        public let inversion: EditRun.Inversion?
    }

    /// Runs stage 1 of `spec` (a checked spec; its model-dependent checks run first). A real-image
    /// edit needs its `picture` (read by whoever holds the file: the engine opens no path a spec
    /// names); `inversions` keeps its inversion for the edits of that picture that follow.
    /// `releasingWeights`: this is the process's last edit (`ptp edit`), so the text encoders'
    /// packed weights are returned once the prompts are encoded and the UNet's once denoising is
    /// over, and the VAE decodes without them (a worker, serving more edits, keeps them).
    public func runStageOne(_ spec: EditSpec, picture: RGBImage? = nil, mask: RGBImage? = nil, inversions: InversionCache? = nil,
                            lowMemory: Bool = false, attentionMaps: Bool = false, releasingWeights: Bool = false,
                            progress: ((Int, Int) -> Void)? = nil) throws -> StageOne {
        try validate(spec, picture: picture, mask: mask)
        let start = Date()
        let settings = settings(for: spec, picture: picture, lowMemory: lowMemory)
        var controller = try controller(for: spec, settings: settings, storeAttention: attentionMaps)
        var noise: Tensor?
        var inversion: EditRun.Inversion?
        if let picture {
            // A real image: invert it with the source prompt, start from the end of its path.
            let (trajectory, report) = try invert(picture, spec: spec, settings: settings, cache: inversions)
            inversion = report
            noise = trajectory[trajectory.count - 1]
            if spec.inversion == .direct {
                let anchored = (controller as? PromptToPromptController) ?? plainController(prompts: spec.prompts.count, keeping: controller)
                anchored.sourceTrajectory = trajectory
                controller = anchored
            }
        }
        if let mask {
            let masked = (controller as? PromptToPromptController) ?? plainController(prompts: spec.prompts.count, keeping: controller)
            masked.regionMask = regionMask(mask, settings: settings)
            controller = masked
        }
        let output = try Sampler(model: model).sample(prompts: spec.prompts, settings: settings, start: noise,
                                                      controller: controller, releasingTextEncoders: releasingWeights, progress: progress)
        if releasingWeights { model.releaseDenoiserWeights() }
        var attention: [TokenAttention]?
        if attentionMaps, let store = (controller as? PromptToPromptController)?.store ?? (controller as? AttentionStoringController)?.store {
            attention = tokenAttention(store: store, prompts: spec.prompts, grid: try attentionGrid(settings))
        }
        let scheduler = settings.scheduler ?? SchedulerChoice(className: model.scheduler.className)
        return StageOne(output: output, settings: settings, attention: attention, seconds: Date().timeIntervalSince(start),
                        scheduler: scheduler.description, inversion: inversion)
    }

    /// Turns image `index` of stage 1's output ([1, C, h, w]) into the final picture: the VAE
    /// decode, or super-resolution when the model has that stage and the spec asks for it, or
    /// the pixels themselves. Each image is independent of the others, so a cluster may finish
    /// them on different workers with the same result.
    public func finishImage(_ stageOne: Tensor, as finish: FinishSpec) throws -> RGBImage {
        guard stageOne.shape.count == 4, stageOne.shape[0] == 1, stageOne.shape[1] == model.unet.configuration.outChannels else {
            throw EditError(field: "input", problem: "a stage-1 output of shape \(stageOne.shape) cannot be finished by this model",
                            fix: "finish one image [1, \(model.unet.configuration.outChannels), h, w] at a time")
        }
        let decoded = Sampler(model: model).decode(stageOne, precision: finish.precision)
        if finish.superResolution, let stage = model.superResolution {
            let upscaler = SuperResolution(model: model, stage: stage)
            return RGBImage(tensor: try upscaler.upscale(decoded, prompt: finish.prompt, seed: finish.seed, precision: finish.precision))
        }
        return RGBImage(tensor: decoded)
    }

    /// Runs the whole edit on this machine.
    public func run(_ spec: EditSpec, picture: RGBImage? = nil, mask: RGBImage? = nil, lowMemory: Bool = false, attentionMaps: Bool = false,
                    releasingWeights: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws -> EditResult {
        let start = Date()
        let stageOne = try runStageOne(spec, picture: picture, mask: mask, lowMemory: lowMemory, attentionMaps: attentionMaps,
                                       releasingWeights: releasingWeights, progress: progress)
        let images = try spec.prompts.indices.map { try finishImage(stageOne.output.slice($0..<($0 + 1)), as: spec.finish(index: $0)) }
        return EditResult(spec: spec, prompts: spec.prompts, images: images, stageOne: stageOne.output, attention: stageOne.attention,
                          settings: stageOne.settings, mode: spec.resolvedMode, scheduler: stageOne.scheduler, seconds: Date().timeIntervalSince(start))
    }

    /// Average cross-attention per token on `grid`, for every prompt.
    func tokenAttention(store: AttentionStore, prompts: [String], grid: AttentionGrid) -> [TokenAttention] {
        let tokenizer = model.tokenizer
        let layers = store.crossLayers(on: grid, places: [.down, .mid, .up])
        guard !layers.isEmpty else { return [] }
        return prompts.enumerated().map { index, prompt in
            let ids = [tokenizer.startToken] + tokenizer.encode(prompt) + [tokenizer.endToken]
            let maps = ids.indices.map { position -> [Float] in
                var selection = [[Int]](repeating: [], count: prompts.count)
                selection[index] = [position]
                return store.tokenMaps(selection, layers: layers, averagedOverSteps: true)[index]
            }
            let texts = ids.map { id -> String in
                id == tokenizer.startToken ? "<start>" : id == tokenizer.endToken ? "<end>" : tokenizer.decode(token: id)
            }
            return TokenAttention(prompt: prompt, tokens: texts, maps: maps, grid: grid)
        }
    }
}
