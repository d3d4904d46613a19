import ArgumentParser
import EditContract
import Engine
import Evaluation
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Score the embedded shapes-world model with its exact detectors: generation, super-resolution, Prompt-to-Prompt against the baseline, real images, and how well CLIP scores pick faithful edits for datasets.")

    @Option(help: "Model directory (default: the embedded model).")
    var model: String?

    @Option(help: "Samples per row.")
    var samples: Int = 200

    @Option(help: "Seed of the scenes and noise.")
    var seed: UInt64 = 1

    @Option(help: "Denoising steps (default: the model's).")
    var steps: Int?

    @Option(help: "Classifier-free guidance of stage 1 (default: the model's).")
    var guidance: Double?

    @Option(parsing: .upToNextOption, help: "Tables: generation, superres, edits, real, datasets (default: all).")
    var tables: [String] = Self.tableNames

    static let tableNames = ["generation", "superres", "edits", "real", "datasets"]

    @Option(help: "Caption pairs per kind of edit in the datasets table.")
    var datasetPairs: Int = 20

    @Option(help: "Variants of each caption pair in the datasets table.")
    var datasetVariants: Int = 16

    @Option(help: "Variants kept of each caption pair in the datasets table (the best by CLIP direction among those the filter passes).")
    var datasetKeep: Int = 2

    @Option(help: "CLIP thresholds of the datasets table, TEXT,DIRECTION,IMAGE (default: the embedded scorer's; the recipe's 0.2,0.2,0.7 are CLIP ViT-L/14's).")
    var datasetFilter: String = "0.7,0.2,0.3"

    @Option(help: "The CLIP model folder of the datasets table (default: the embedded model's scorer).")
    var scorer: String?

    @Option(help: "Write every variant of the datasets table (kind, pair, seed, CLIP scores, faithful, passed, kept) to this JSON Lines file, to choose a scorer's thresholds from.")
    var datasetScores: String?

    @Option(parsing: .upToNextOption, help: "Edit kinds of the edits table: colour, shape, background, pattern, reweight, attenuate (default: all; the real-image table takes the first four).")
    var edits: [String] = ShapesWorldEvaluation.EditKind.allCases.map(\.option)

    @Option(help: "Cross-attention weight of the added pattern word in the reweight row.")
    var reweightWeight: Double = 4

    @Flag(help: "List the stage-2 scenes whose detected attributes were not kept.")
    var showFailures = false

    @Option(help: "fp32 (the default) or bf16 for every model call.")
    var precision: Precision = .fp32

    /// Prints at once, also when stdout is a file: a full run takes about an hour.
    private func line(_ text: String) {
        print(text)
        fflush(nil)
    }

    func run() throws {
        for table in tables where !Self.tableNames.contains(table) {
            throw ValidationError("--tables: '\(table)' is not one of \(Self.tableNames.joined(separator: ", "))")
        }
        guard datasetPairs >= 1, datasetVariants >= 1, (1...datasetVariants).contains(datasetKeep) else {
            throw ValidationError("--dataset-pairs and --dataset-variants must be at least 1, --dataset-keep from 1 to --dataset-variants")
        }
        let kinds = ShapesWorldEvaluation.EditKind.allCases.map(\.option)
        for kind in edits where !kinds.contains(kind) {
            throw ValidationError("--edits: '\(kind)' is not one of \(kinds.joined(separator: ", "))")
        }
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        try precision.checkSupported()
        let model = try ModelLocation.load(self.model)
        var evaluation = ShapesWorldEvaluation(model: model, samples: samples, seed: seed, steps: steps, guidance: guidance,
                                             reweightWeight: reweightWeight)
        evaluation.precision = precision
        line("model \(model.identifier), \(samples) samples per row, seed \(seed), \(steps ?? model.defaults.steps) steps, guidance \(guidance ?? Double(model.defaults.guidance)), \(precision)")
        if tables.contains("generation") {
            line("\nGeneration fidelity at stage 1 (shape, colour, background and pattern all right)")
            line("(a pair's objects in either order, as its caption states no positions; also in the order they are named, left to right)")
            line("captions        samples  fidelity  in order  background  pattern  colour  shape")
            // The grammar's own mix (a quarter of the captions name two objects), then each kind.
            for objects in [nil, 1, 2] as [Int?] {
                let row = try evaluation.generationFidelity(objects: objects, progress: ProgressBar("generation, " + (objects.map { "\($0) object(s)" } ?? "all captions")).update)
                let a = row.attributes
                line(row.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                      + String(format: "%7d  %7.1f%%  %7.1f%%  %9.1f%%  %6.1f%%  %5.1f%%  %4.1f%%", row.samples, 100 * row.fidelity,
                               100 * row.fidelityInDrawingOrder,
                               100 * (a["background"] ?? 0), 100 * (a["pattern"] ?? 0), 100 * (a["colour"] ?? 0), 100 * (a["shape"] ?? 0)))
            }
        }
        if tables.contains("superres") {
            let row = try evaluation.superResolution(progress: ProgressBar("super-resolution").update)
            line("\nStage 2: SR(downsampled exact render) against the exact render")
            line(String(format: "samples %d, mean PSNR %.2f dB, detected attributes preserved %.1f%%", row.samples, row.meanPSNR, 100 * row.preservation))
            line(String(format: "kept: background %.1f%%, pattern %.1f%%, objects (colour and shape) %.1f%%",
                        100 * row.share(\.backgroundKept), 100 * row.share(\.patternKept), 100 * row.share(\.objectsKept)))
            if showFailures {
                for scene in row.failures { line("  not kept: \(scene.caption): \(scene.detections)") }
            }
        }
        if tables.contains("edits") {
            line("\nPrompt-to-Prompt (P2P) against the no-control baseline, same seeds")
            line("edit                        samples  success P2P/base   object IoU P2P/base  centroid shift px  background diff")
            for kind in ShapesWorldEvaluation.EditKind.allCases where edits.contains(kind.option) {
                let row = try evaluation.edits(kind, progress: ProgressBar(kind.rawValue).update)
                let name = kind == .reweight ? kind.rawValue + String(format: " x%g", evaluation.reweightWeight) : kind.rawValue
                line(name.padding(toLength: 28, withPad: " ", startingAt: 0)
                      + String(format: "%7d  %6.1f%% / %5.1f%%   %6.3f / %6.3f   %6.2f / %6.2f    %5.1f / %5.1f", row.samples,
                               100 * row.success.0, 100 * row.success.1, row.objectIoU.0, row.objectIoU.1,
                               row.centroidShift.0, row.centroidShift.1, row.backgroundDifference.0, row.backgroundDifference.1))
            }
        }
        if tables.contains("real") {
            line("\nReal-image editing: single-object scenes, as exact renders and as \"photographs\" (drawn at 1.5x, blurred, shrunk,")
            line("sensor noise, JPEG at quality 75), inverted with their captions and edited; background PSNR: the edit against the scene")
            line("as it was, over the pixels the edit leaves unchanged; edit PSNR: against the drawing of the edited scene, over the pixels")
            line("it changes; success by the detector; seconds per edit, inversion included, on one thread")
            line("input           edit             inversion        samples  reconstruction  background  edit PSNR  success  s/image")
            for input in ShapesWorldEvaluation.RealInput.allCases {
                for kind in ShapesWorldEvaluation.realImageEdits where edits.contains(kind.option) {
                    for method in [InversionMethod.ddim, .negativePrompt, .direct] {
                        let row = try evaluation.realImages(kind, method: method, input: input,
                                                            progress: ProgressBar("real \(input.rawValue), \(kind.rawValue), \(method.rawValue)").update)
                        line(input.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0) + kind.rawValue.padding(toLength: 17, withPad: " ", startingAt: 0)
                              + method.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)
                              + String(format: "%9d  %11.2f dB  %7.2f dB  %6.2f dB  %6.1f%%  %7.3f", row.samples, row.reconstructionPSNR,
                                       row.backgroundPSNR, row.insidePSNR, 100 * row.success, row.secondsPerImage))
                    }
                }
            }
        }
        if tables.contains("datasets") {
            try datasetsTable(evaluation)
        }
    }

    /// The InstructPix2Pix recipe's filter and keep on shapes-world caption pairs: how often the
    /// kept variants are faithful edits, against all variants.
    private func datasetsTable(_ evaluation: ShapesWorldEvaluation) throws {
        guard let folder = scorer.map({ URL(fileURLWithPath: $0) }) ?? ModelLocation.defaultModel()?.appendingPathComponent("scorer"),
              FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path) else {
            throw ValidationError("--scorer: no CLIP model folder given and the embedded model has no scorer/; name one (a folder transformers' CLIPModel saved)")
        }
        let clip = try CLIPScorer(directory: folder)
        var evaluation = evaluation
        evaluation.samples = datasetPairs
        // The recipe as users run it (euler-a, the shared self-attention variant, its p and guidance
        // ranges and CLIP thresholds), with this table's variants and keep; --steps, when given,
        // in place of its 100.
        let thresholds = datasetFilter.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard thresholds.count == 3 else { throw ValidationError("--dataset-filter: '\(datasetFilter)' is not TEXT,DIRECTION,IMAGE (three numbers)") }
        let recipe: [String: JSONValue] = ["recipe": .string("instruct-pix2pix"), "keep": .int(datasetKeep), "filter": .object([
            "clip_text": .double(thresholds[0]), "clip_direction": .double(thresholds[1]), "clip_image": .double(thresholds[2])])]
        line("\nEdit datasets: the instruct-pix2pix recipe, \(datasetVariants) variants of each caption pair, the best \(datasetKeep) kept by CLIP direction")
        line("among those that pass the CLIP filter (text >= \(thresholds[0]), direction >= \(thresholds[1]), image >= \(thresholds[2])), scorer \(folder.path), \(steps ?? 100) steps")
        line("(faithful: the detector finds the source caption in the source picture and the edited caption in the edit)")
        line("edit              pairs  variants  passed  kept   faithful: all   passed    kept")
        var total: [Int] = [0, 0, 0, 0, 0, 0, 0]
        var records = ""
        for kind in [ShapesWorldEvaluation.EditKind.colour, .shape, .background] where edits.contains(kind.option) {
            let row = try evaluation.dataset(kind, scorer: clip, variants: datasetVariants, recipe: recipe, progress: ProgressBar("dataset, " + kind.rawValue).update)
            datasetLine(row.name, [row.pairs, row.variants, row.passed, row.kept, row.faithfulAll, row.faithfulPassed, row.faithfulKept])
            total = zip(total, [row.pairs, row.variants, row.passed, row.kept, row.faithfulAll, row.faithfulPassed, row.faithfulKept]).map(+)
            for verdict in row.verdicts {
                let s = verdict.scores
                records += String(format: "{\"kind\": \"%@\", \"pair\": %d, \"seed\": %llu, \"clip_text_0\": %.6f, \"clip_text_1\": %.6f, "
                                  + "\"clip_direction\": %.6f, \"clip_image\": %.6f, \"faithful\": %@, \"passed\": %@, \"kept\": %@}\n",
                                  kind.option, verdict.pair, verdict.seed, s.text0, s.text1, s.direction, s.image,
                                  "\(verdict.faithful)", "\(verdict.passed)", "\(verdict.kept)")
            }
        }
        datasetLine("all", total)
        if let datasetScores {
            try Data(records.utf8).write(to: URL(fileURLWithPath: datasetScores))
            line("every variant's scores and verdicts: \(datasetScores)")
        }
    }

    /// pairs, variants, passed, kept, faithful (all, passed, kept).
    private func datasetLine(_ name: String, _ n: [Int]) {
        func share(_ count: Int, _ total: Int) -> Double { 100 * Double(count) / Double(max(total, 1)) }
        line(name.padding(toLength: 16, withPad: " ", startingAt: 0)
              + String(format: "%7d  %8d  %6d  %4d   %13.1f%%  %6.1f%%  %6.1f%%", n[0], n[1], n[2], n[3], share(n[4], n[1]), share(n[5], n[2]), share(n[6], n[3])))
    }
}
