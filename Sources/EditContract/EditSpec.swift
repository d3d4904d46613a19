/// One edit: a source prompt, its edited versions and the controls. The same value is what
/// `ptp edit` runs, one line of a cluster batch file, the payload of a stage-1 task and the
/// `spec` of a manifest line. Settings left out come from the model's recommendations.
///
/// Made from typed values (then `validate()`), or decoded from JSON (`init(json:)`, `Codable`),
/// which validates too; `Key` is the one list of its JSON keys.
public struct EditSpec: Sendable, Equatable {
    public var id: String
    public var source: String
    public var targets: [String]
    /// What every prompt is steered away from: the unconditional half of classifier-free
    /// guidance encodes it instead of the empty prompt (diffusers' `negative_prompt`); nil for
    /// none. It applies to the base stage, not to a cascade's super-resolution.
    public var negativePrompt: String?
    public var mode: EditMode = .auto
    public var crossReplace = CrossReplaceSchedule(StepRange(end: 0.8))
    public var selfReplace = StepRange(end: 0.4)
    /// Per prompt (source first), the words whose attention outlines the region to edit.
    public var blend: [[String]]?
    /// Per prompt, words whose region is taken out of the blend mask.
    public var blendSubtract: [[String]]?
    public var blendThreshold: Double = 0.3
    /// Threshold of the (unpooled) subtraction mask.
    public var blendSubtractThreshold: Double = 0.3
    /// Fraction of the steps before blending starts.
    public var startBlend: Double = 0.2
    /// Word -> attention scale for the edited prompts (negative allowed).
    public var reweight: [String: Double] = [:]
    /// Spatial replacement: the edited latents are replaced by the source's for the first
    /// (1 - this) of the steps; nil for none.
    public var spatialReplace: Double?
    /// The largest query grid side that self-attention is injected at; nil for the default
    /// (16 at SD's 64x64 latent, scaled with the latent).
    public var selfReplaceSide: Int?
    /// Whose self-attention injection: Prompt-to-Prompt's, or the InstructPix2Pix recipe's.
    public var selfReplaceVariant: SelfReplaceVariant = .promptToPrompt
    /// How an ancestral scheduler's per-step noise is drawn for the prompts.
    public var ancestralNoise: AncestralNoise = .shared
    public var seed: UInt64 = 0
    public var steps: Int?
    public var guidance: Double?
    public var height: Int?
    public var width: Int?
    /// A model directory; nil for the default (embedded) model.
    public var model: String?
    /// Run the model's super-resolution stage (when it has one).
    public var superResolution = true
    /// A real picture to edit (PNG or JPEG, one the source prompt describes), instead of a
    /// generated one: its path as the batch names it. The picture itself travels with the edit;
    /// no worker opens this path.
    public var image: String?
    /// The SHA-256 (64 lowercase hex digits) of the picture's file, set by `ptp submit` when it
    /// reads it: how the cluster finds the bytes that travel with the edit.
    public var imageSHA256: String?
    /// A picture (PNG or JPEG, any size) saying where the edit may change the image: white is
    /// editable. Every edited prompt's latents equal the source's outside it after every step,
    /// alone or within LocalBlend's word masks. Carried with the edit as `image` is.
    public var mask: String?
    /// The SHA-256 of the mask's file, set by `ptp submit` as `image_sha256` is.
    public var maskSHA256: String?
    /// How the real image is inverted.
    public var inversion: InversionMethod = .direct
    /// The arithmetic of the models' heavy layers (fp32 unless asked).
    public var precision: Precision = .fp32
    /// The scheduler; nil for the model's own (DDIM for real images, which are inverted with it).
    public var scheduler: SchedulerChoice?
    /// SDXL's size conditioning (diffusers' `original_size`, [height, width]): the size the
    /// model is told the image had before resizing; nil for the output's size.
    public var originalSize: [Int]?
    /// SDXL's crop conditioning (diffusers' `crops_coords_top_left`, [top, left]); nil for [0, 0].
    public var cropsCoordsTopLeft: [Int]?
    /// A sampled line (`samples` and the options that go with it): nil for a single edit.
    public var sampling: SamplingPlan?
    /// What each variant of a sampled line draws from ranges.
    public var vary = VariedValues()
    /// The named defaults the line asked for (already applied; kept for its records).
    public var recipe: EditRecipe?

    public init(id: String, source: String, targets: [String]) {
        self.id = id
        self.source = source
        self.targets = targets
    }

    /// The JSON keys of a spec, each field's name in batch files, payloads and manifests.
    public enum Key: String, CaseIterable, CodingKey, Sendable {
        case id, source, targets, mode, negativePrompt = "negative_prompt"
        case crossReplace = "cross_replace", selfReplace = "self_replace", selfReplaceSide = "self_replace_side"
        case selfReplaceVariant = "self_replace_variant", ancestralNoise = "ancestral_noise"
        case blend, blendSubtract = "blend_subtract", blendThreshold = "blend_threshold"
        case blendSubtractThreshold = "blend_subtract_threshold", startBlend = "start_blend"
        case reweight, spatialReplace = "spatial_replace"
        case seed, steps, guidance, height, width, model
        case superResolution = "super_resolution", image, imageSHA256 = "image_sha256", mask, maskSHA256 = "mask_sha256"
        case inversion, precision, scheduler
        case originalSize = "original_size", cropsCoordsTopLeft = "crops_coords_top_left"
        case samples, vary, filter, keep, keepRejected = "keep_rejected", scorer, recipe, instruction
    }

    /// The keys that only a sampled line takes.
    public static let samplingKeys: Set<Key> = [.samples, .vary, .filter, .keep, .keepRejected, .scorer, .recipe, .instruction]

    /// The largest image side (pixels) an edit may ask for: a bound on what one line of a batch
    /// can make a worker allocate (SDXL's native side is 1024).
    public static let maximumImageSide = 4096
    /// The most edited prompts one edit may have (all are denoised in one batch).
    public static let maximumTargets = 32
    /// The largest attention grid side `self_replace_side` may name (a 4096 px image's latent
    /// is 512).
    public static let maximumGridSide = 1024
    /// The largest value of a size or crop conditioning (they are only numbers the model is
    /// told; no image of that size is made).
    public static let maximumConditioningSize = 65536

    /// Every prompt, source first.
    public var prompts: [String] { [source] + targets }

    /// The words of a prompt, as every word-based option counts them: split on spaces, empty
    /// words dropped.
    public static func words(of prompt: String) -> [String] {
        prompt.split(separator: " ").map(String.init)
    }

    /// The mode after `auto` is decided.
    public var resolvedMode: EditMode {
        guard mode == .auto else { return mode }
        let count = Self.words(of: source).count
        return targets.allSatisfy({ Self.words(of: $0).count == count }) ? .replace : .refine
    }

    /// The capability a worker needs to run this edit: its model at its precision (the
    /// coordinator matches it against what workers announce).
    public var capabilityKey: String { CapabilityKey.key(model: model ?? "default", precision: precision) }

    /// Edits with equal keys can share a stage-1 task: the same model, precision and sampling
    /// settings (a task's edits then take about as long as each other), and the same picture
    /// and mask if any (a task carries at most one of each, and its edits share one inversion).
    /// Edits without pictures keep the key they always had, so that edits journaled before
    /// pictures existed still open on workers (whose check compares the key).
    public var packKey: String {
        let settings = [steps.map(String.init), height.map(String.init), width.map(String.init), guidance.map { "\($0)" }]
        let pictures = imageSHA256 == nil && maskSHA256 == nil ? [] : ["image=" + (imageSHA256 ?? "-"), "mask=" + (maskSHA256 ?? "-")]
        return ([capabilityKey] + settings.map { $0 ?? "-" } + pictures).joined(separator: "|")
    }
}
