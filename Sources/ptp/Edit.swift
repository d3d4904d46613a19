import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation
import Imaging

struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prompt-to-Prompt: edit an image by editing its prompt.",
        discussion: """
            The source and edited prompts are denoised together from the same noise; the edited prompts' \
            cross-attention is taken, mapped or reweighted from the source's. Writes source.png, target-1.png..., \
            grid.png (and attention-*.png with --attention) into --output.
            Either give the prompts and controls as options, or one JSON edit with --spec (the format of a line \
            of a cluster batch file).
            """)

    @Option(help: "A diffusers-format model directory (default: the spec's, else the embedded model).")
    var model: String?

    @Option(help: ArgumentHelp("A LoRA file fused into the model's UNet and text encoders at load, at a scale (default 1): diffusers/PEFT or kohya layout, e.g. an LCM-LoRA. Repeat for several.",
                               valueName: "path[:scale]"))
    var lora: [String] = []

    @Option(help: "A JSON file holding one edit (keys: id, source, targets, negative_prompt, mode, cross_replace, self_replace, blend, reweight, seed, steps, guidance, height, width, model...).")
    var spec: String?

    @Option(help: "The source prompt.")
    var source: String?

    @Option(name: .customLong("target"), help: "An edited prompt (repeat for several).")
    var targets: [String] = []

    @Option(help: "SDXL: the original size the model is told, HEIGHT,WIDTH (default: the image's size).")
    var originalSize: NumberPair?

    @Option(help: "SDXL: the crop corner the model is told, TOP,LEFT (default: 0,0).")
    var cropsCoordsTopLeft: NumberPair?

    @Option(help: "What every prompt is steered away from: guidance's unconditional prompt (default: none: the empty prompt, or zeros where the model asks, as SDXL does).")
    var negativePrompt: String?

    @Option(help: "replace | refine | reweight | none | auto (replace when word counts match, refine otherwise).")
    var mode: String?

    @Option(help: "Cross-attention injection: a fraction of the steps (0.8), a range (0.2:0.8), or per word (default=1,lion=0.4).")
    var crossReplace: String?

    @Option(help: "Self-attention injection: a fraction of the steps (0.4) or a range (0:0.4).")
    var selfReplace: String?

    @Option(help: "Inject self-attention only at query grids up to this side (default: 16 at SD's 64x64 latent, scaled with the latent).")
    var selfReplaceSide: Int?

    @Option(help: "Self-attention injection as prompt-to-prompt does it (conditional half, small grids) or as the instruct-pix2pix dataset recipe does (both guidance halves, every layer, steps i with i/(T-1) < p).")
    var selfReplaceVariant: SelfReplaceVariant?

    @Option(help: "With an ancestral scheduler (euler-a): one fresh noise per step shared by every prompt (shared, the default), or one per prompt (independent).")
    var ancestralNoise: AncestralNoise?

    @Option(help: "LocalBlend words of one prompt, comma-separated; repeat once per prompt, source first.")
    var blend: [String] = []

    @Option(help: "Reweight a word of the edited prompts: WORD=WEIGHT (repeatable; negative allowed).")
    var reweight: [String] = []

    @Option(help: "Seed of the shared starting noise.")
    var seed: UInt64?

    @Option(help: "Denoising steps (default: the model's).")
    var steps: Int?

    @Option(help: "Guidance scale (default: the model's).")
    var guidance: Double?

    @Option(help: "Image height (default: the model's).")
    var height: Int?

    @Option(help: "Image width (default: the model's).")
    var width: Int?

    @Option(help: "Edit this real image (a PNG described by --source) instead of a generated one.")
    var image: String?

    @Option(help: "A mask picture (PNG or JPEG, white where the edit may change the image; resized to the latents).")
    var mask: String?

    @Option(help: "How the image is inverted: direct (the source branch follows the inversion path; default), ddim, or negative-prompt (the source prompt as the negative prompt).")
    var inversion: String?

    @Option(help: "Output folder.")
    var output: String

    @Flag(help: "Also write the per-token cross-attention picture of each prompt.")
    var attention = false

    @Flag(help: "Run the two guidance halves as separate UNet calls (less memory).")
    var lowMemory = false

    @Flag(help: "Skip the model's super-resolution stage.")
    var noSuperResolution = false

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Option(help: "fp32 (exact, the default) or bf16 (bfloat16 products with float32 accumulation; needs AVX512-BF16 or AMX).")
    var precision: Precision?

    @Option(help: ArgumentHelp("The scheduler: ddim, dpm++, dpm++-karras, euler, euler-karras, euler-a or a diffusers class name, with config overrides (e.g. dpm++,solver_order=3); default: the model's (DDIM for --image).",
                               valueName: "name[,key=value...]"))
    var scheduler: String?

    /// The edit: the --spec file's, or the prompts given, with the options given on top,
    /// checked by the edit contract as a batch line is.
    func editSpec() throws -> EditSpec {
        var spec: EditSpec
        var given = givenOptions
        if let file = self.spec {
            guard source == nil, targets.isEmpty else { throw ValidationError("give either --spec or --source/--target, not both") }
            let url = URL(fileURLWithPath: file)
            guard let data = try? Data(contentsOf: url) else { throw ValidationError("--spec: cannot read \(file)") }
            do {
                let json = try StrictJSON.parse(String(decoding: data, as: UTF8.self))
                spec = try EditSpec(json: json)
                given.formUnion((json.objectValue ?? [:]).keys.compactMap(EditSpec.Key.init(rawValue:)))
            } catch let error as EditError {
                throw ValidationError("--spec \(file): \(error)")
            } catch {
                throw ValidationError("--spec \(file): not JSON: \(error)")
            }
            // As in a batch: a relative image path means the spec file's folder.
            if let image = spec.image, !image.hasPrefix("/") {
                spec.image = url.deletingLastPathComponent().appendingPathComponent(image).standardizedFileURL.path
            }
            if let mask = spec.mask, !mask.hasPrefix("/") {
                spec.mask = url.deletingLastPathComponent().appendingPathComponent(mask).standardizedFileURL.path
            }
        } else {
            guard let source else { throw ValidationError("--source is required (or --spec FILE)") }
            guard !targets.isEmpty else { throw ValidationError("give at least one --target") }
            spec = EditSpec(id: "edit", source: source, targets: targets)
        }
        if let negativePrompt { spec.negativePrompt = negativePrompt }
        if let originalSize { spec.originalSize = originalSize.values }
        if let cropsCoordsTopLeft { spec.cropsCoordsTopLeft = cropsCoordsTopLeft.values }
        if let mode {
            guard let parsed = EditMode(rawValue: mode) else {
                throw ValidationError("--mode: '\(mode)' is not a mode; use one of \(EditMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            spec.mode = parsed
        }
        if let crossReplace { spec.crossReplace = try Self.parseCrossReplace(crossReplace) }
        if let selfReplace { spec.selfReplace = try Self.parseRange(selfReplace, option: "--self-replace") }
        if let selfReplaceSide { spec.selfReplaceSide = selfReplaceSide }
        if let selfReplaceVariant { spec.selfReplaceVariant = selfReplaceVariant }
        if let ancestralNoise { spec.ancestralNoise = ancestralNoise }
        if !blend.isEmpty {
            spec.blend = blend.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        }
        if !reweight.isEmpty {
            spec.reweight = [:]
            for item in reweight {
                let parts = item.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let weight = Double(parts[1]) else {
                    throw ValidationError("--reweight: '\(item)' is not WORD=WEIGHT (for example smiling=5)")
                }
                spec.reweight[String(parts[0])] = weight
            }
        }
        if let seed { spec.seed = seed }
        if let steps { spec.steps = steps }
        if let guidance { spec.guidance = guidance }
        if let height { spec.height = height }
        if let width { spec.width = width }
        if let model { spec.model = model }
        if noSuperResolution { spec.superResolution = false }
        if let image { spec.image = URL(fileURLWithPath: image).standardizedFileURL.path }
        if let mask { spec.mask = URL(fileURLWithPath: mask).standardizedFileURL.path }
        if let inversion {
            guard let method = InversionMethod(rawValue: inversion) else { throw ValidationError("--inversion: '\(inversion)' is not one of \(InversionMethod.names)") }
            spec.inversion = method
        }
        if let precision { spec.precision = precision }
        if let scheduler { spec.scheduler = try SchedulerChoice(parsing: scheduler) }
        try spec.validate(given: given)
        return spec
    }

    /// The spec options set by flags (an option without effect is refused only when given).
    var givenOptions: Set<EditSpec.Key> {
        var given: Set<EditSpec.Key> = []
        if mode != nil { given.insert(.mode) }
        if crossReplace != nil { given.insert(.crossReplace) }
        if selfReplace != nil { given.insert(.selfReplace) }
        if selfReplaceSide != nil { given.insert(.selfReplaceSide) }
        if selfReplaceVariant != nil { given.insert(.selfReplaceVariant) }
        if ancestralNoise != nil { given.insert(.ancestralNoise) }
        if !blend.isEmpty { given.insert(.blend) }
        if !reweight.isEmpty { given.insert(.reweight) }
        if inversion != nil { given.insert(.inversion) }
        return given
    }

    static func parseRange(_ text: String, option: String) throws -> StepRange {
        if let value = Double(text) { return StepRange(end: value) }
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "," })
        guard parts.count == 2, let start = Double(parts[0]), let end = Double(parts[1]) else {
            throw ValidationError("\(option): '\(text)' is not a fraction (0.8) or a range (0.2:0.8)")
        }
        return StepRange(start: start, end: end)
    }

    /// A range, or WORD=RANGE items with `default` for the other tokens (every step when left out).
    static func parseCrossReplace(_ text: String) throws -> CrossReplaceSchedule {
        guard text.contains("=") else { return CrossReplaceSchedule(try parseRange(text, option: "--cross-replace")) }
        var schedule = CrossReplaceSchedule(StepRange(end: 1))
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--cross-replace: '\(item)' is not WORD=FRACTION") }
            let range = try parseRange(String(parts[1]), option: "--cross-replace")
            if parts[0] == "default" { schedule.defaultRange = range } else { schedule.words[String(parts[0])] = range }
        }
        return schedule
    }

    func run() throws {
        if let threads {
            try ComputeThreads.validate(threads)
            ComputeThreads.setThreadCount(threads)
        }
        let spec = try editSpec()
        let model = try ModelLocation.load(spec.model, lora: lora)
        let editor = PromptToPromptEditor(model: model)
        let bar = ProgressBar("denoising (\(spec.prompts.count) prompts, \(spec.resolvedMode.rawValue))")
        // The picture is read here, where its path means something; the engine opens no path.
        let picture: RGBImage?, maskPicture: RGBImage?
        do { picture = try spec.image.map { try PictureFile.read(URL(fileURLWithPath: $0)) } } catch let error as PictureError {
            throw ValidationError("image: \(error)")
        }
        do { maskPicture = try spec.mask.map { try PictureFile.read(URL(fileURLWithPath: $0)) } } catch let error as PictureError {
            throw ValidationError("mask: \(error)")
        }
        // One edit per process: each component's packed weights go once it has run for the last time.
        let result = try editor.run(spec, picture: picture, mask: maskPicture, lowMemory: lowMemory, attentionMaps: attention,
                                    releasingWeights: true, progress: bar.update)
        let directory = URL(fileURLWithPath: output)
        let written = try EditOutputs.write(result.images, to: directory)
        if let maps = result.attention {
            for (index, map) in maps.enumerated() {
                let name = index == 0 ? "attention-source.png" : "attention-target-\(index).png"
                try PNGCodec.write(AttentionPicture.render(map), to: directory.appendingPathComponent(name))
            }
        }
        note(String(format: "edit '%@' (%@) done in %.1f s, peak memory %@; wrote %@ and the other images to %@", spec.id,
                    result.mode.rawValue, result.seconds, PeakMemory.summary, written.last?.lastPathComponent ?? "", directory.path))
    }
}
