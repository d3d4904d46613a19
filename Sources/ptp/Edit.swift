import ArgumentParser
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

    @Option(help: "A JSON file holding one edit (keys: id, source, targets, mode, cross_replace, self_replace, blend, reweight, seed, steps, guidance, height, width, model...).")
    var spec: String?

    @Option(help: "The source prompt.")
    var source: String?

    @Option(name: .customLong("target"), help: "An edited prompt (repeat for several).")
    var targets: [String] = []

    @Option(help: "replace | refine | reweight | none | auto (replace when word counts match, refine otherwise).")
    var mode: String?

    @Option(help: "Cross-attention injection: a fraction of the steps (0.8), a range (0.2:0.8), or per word (default=1,lion=0.4).")
    var crossReplace: String?

    @Option(help: "Self-attention injection: a fraction of the steps (0.4) or a range (0:0.4).")
    var selfReplace: String?

    @Option(help: "Inject self-attention only at query grids up to this side (default: 16 at SD's 64x64 latent, scaled with the latent).")
    var selfReplaceSide: Int?

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

    @Option(help: "How the image is inverted: direct (the source branch follows the inversion path; default) or ddim.")
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

    @Option(help: ArgumentHelp("The scheduler: ddim, dpm++, dpm++-karras, euler, euler-karras or a diffusers class name, with config overrides (e.g. dpm++,solver_order=3); default: the model's (DDIM for --image).",
                               valueName: "name[,key=value...]"))
    var scheduler: String?

    /// The edit as the JSON object a batch line would hold.
    func editSpec() throws -> EditSpec {
        var object: [String: JSONValue]
        if let spec {
            guard source == nil, targets.isEmpty else { throw ValidationError("give either --spec or --source/--target, not both") }
            let url = URL(fileURLWithPath: spec)
            guard let data = try? Data(contentsOf: url) else { throw ValidationError("--spec: cannot read \(spec)") }
            guard let parsed = (try? JSONValue.parse(data))?.objectValue else { throw ValidationError("--spec: \(spec) is not a JSON object") }
            object = parsed
            // As in a batch: a relative image path means the spec file's folder.
            if case .string(let path)? = parsed["image"], !path.hasPrefix("/") {
                object["image"] = .string(url.deletingLastPathComponent().appendingPathComponent(path).standardizedFileURL.path)
            }
        } else {
            guard let source else { throw ValidationError("--source is required (or --spec FILE)") }
            guard !targets.isEmpty else { throw ValidationError("give at least one --target") }
            object = ["id": .string("edit"), "source": .string(source), "targets": .array(targets.map { .string($0) })]
        }
        if let mode { object["mode"] = .string(mode) }
        if let crossReplace { object["cross_replace"] = try Self.parseCrossReplace(crossReplace) }
        if let selfReplace { object["self_replace"] = try Self.parseRange(selfReplace, option: "--self-replace") }
        if let selfReplaceSide { object["self_replace_side"] = .int(selfReplaceSide) }
        if !blend.isEmpty {
            object["blend"] = .array(blend.map { .array($0.split(separator: ",").map { .string(String($0).trimmingCharacters(in: .whitespaces)) }) })
        }
        if !reweight.isEmpty {
            var weights: [String: JSONValue] = [:]
            for item in reweight {
                let parts = item.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let weight = Double(parts[1]) else {
                    throw ValidationError("--reweight: '\(item)' is not WORD=WEIGHT (for example smiling=5)")
                }
                weights[String(parts[0])] = .double(weight)
            }
            object["reweight"] = .object(weights)
        }
        if let seed {
            guard let value = Int(exactly: seed) else { throw ValidationError("--seed: \(seed) is too large; use 0 to \(Int.max)") }
            object["seed"] = .int(value)
        }
        if let steps { object["steps"] = .int(steps) }
        if let guidance { object["guidance"] = .double(guidance) }
        if let height { object["height"] = .int(height) }
        if let width { object["width"] = .int(width) }
        if let model { object["model"] = .string(model) }
        if noSuperResolution { object["super_resolution"] = .bool(false) }
        if let image { object["image"] = .string(URL(fileURLWithPath: image).standardizedFileURL.path) }
        if let inversion { object["inversion"] = .string(inversion) }
        if let precision { object["precision"] = .string(precision.rawValue) }
        if let scheduler { object["scheduler"] = .string(scheduler) }
        return try EditSpec(json: .object(object))
    }

    static func parseRange(_ text: String, option: String) throws -> JSONValue {
        if let value = Double(text) { return .double(value) }
        let parts = text.split(whereSeparator: { $0 == ":" || $0 == "," })
        guard parts.count == 2, let start = Double(parts[0]), let end = Double(parts[1]) else {
            throw ValidationError("\(option): '\(text)' is not a fraction (0.8) or a range (0.2:0.8)")
        }
        return .array([.double(start), .double(end)])
    }

    static func parseCrossReplace(_ text: String) throws -> JSONValue {
        guard text.contains("=") else { return try parseRange(text, option: "--cross-replace") }
        var object: [String: JSONValue] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--cross-replace: '\(item)' is not WORD=FRACTION") }
            object[String(parts[0])] = try parseRange(String(parts[1]), option: "--cross-replace")
        }
        return .object(object)
    }

    func run() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
            ComputeThreads.setThreadCount(threads)
        }
        let spec = try editSpec()
        let model = try ModelLocation.load(spec.model)
        let editor = PromptToPromptEditor(model: model)
        let bar = ProgressBar("denoising (\(spec.prompts.count) prompts, \(spec.resolvedMode.rawValue))")
        let result = try editor.run(spec, lowMemory: lowMemory, attentionMaps: attention, progress: bar.update)
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
