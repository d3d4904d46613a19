import EditContract
import Engine
import Foundation
import Imaging

extension ShapesWorldEvaluation {
    /// How well CLIP scores pick faithful edits out of a line's variants, for one kind of edit.
    public struct DatasetRow: Sendable {
        public let name: String
        public let pairs: Int
        public let variants: Int
        /// Variants the filter passes, and those kept (the best `keep` of each pair among them).
        public let passed: Int
        public let kept: Int
        /// Faithful variants among all, among those passed and among those kept.
        public let faithfulAll: Int
        public let faithfulPassed: Int
        public let faithfulKept: Int
        /// Every variant: its pair, scores, and whether it is faithful, passed and was kept.
        public let verdicts: [Verdict]
    }

    public struct Verdict: Sendable {
        public let pair: Int
        public let seed: UInt64
        public let scores: PairScores
        public let faithful: Bool
        public let passed: Bool
        public let kept: Bool
    }

    /// The dataset recipe on shapes-world caption pairs, as a sampled line runs on a worker and
    /// the coordinator keeps its best: `samples` pairs of each kind (single-object colour, shape
    /// and background swaps), `variants` each drawn by the line's `vary`, scored by `scorer`,
    /// filtered and ranked by `plan`. A variant is faithful when the exact detector finds the
    /// source caption in the source picture and the edited caption in the edit.
    public func dataset(_ kind: EditKind, scorer: CLIPScorer, variants: Int, recipe: [String: JSONValue],
                        progress: ((Int, Int) -> Void)? = nil) throws -> DatasetRow {
        var generator = SplitMix64(seed: seed &+ 2000 &+ UInt64(EditKind.allCases.firstIndex(of: kind) ?? 0))
        let lines = try (0..<samples).map { pair -> (spec: EditSpec, source: Scene, target: Scene) in
            guard [.colour, .shape, .background].contains(kind) else {
                throw EditError(field: "kind", problem: "\(kind.option) is not a swap", fix: "use colour, shape or background")
            }
            let (spec, source, target, _) = editCase(kind, generator: &generator)
            var line: [String: JSONValue] = recipe
            line["id"] = .string("pair-\(pair)")
            line["source"] = .string(spec.source)
            line["targets"] = .array(spec.targets.map { .string($0) })
            line["seed"] = .int(Int(seed) &+ pair)
            line["samples"] = .int(variants)
            line["super_resolution"] = .bool(false)
            if let steps { line["steps"] = .int(steps) }
            if precision != .fp32 { line["precision"] = .string(precision.rawValue) }
            // Parsed as a batch line is, which checks it.
            return (try EditSpec(json: .object(line)), source, target)
        }
        let editor = PromptToPromptEditor(model: model)
        // Per variant: its scores, seed and whether it is faithful.
        let results = try eachSample(samples * variants, progress: progress) { index -> (scores: PairScores, seed: UInt64, faithful: Bool) in
            let line = lines[index / variants]
            let (spec, draw) = line.spec.variant(index % variants)
            let result = try editor.run(spec)
            let scores = try scorer.scores(source: result.images[0], edited: result.images[1], sourcePrompt: spec.source, editedPrompt: spec.targets[0])
            let faithful = ShapesWorldScore.matches(line.source, SceneDetector.detect(result.images[0]))
                && ShapesWorldScore.matches(line.target, SceneDetector.detect(result.images[1]))
            return (scores, draw.seed, faithful)
        }
        var passed = 0, kept = 0, faithfulAll = 0, faithfulPassed = 0, faithfulKept = 0
        var verdicts: [Verdict] = []
        for (pair, line) in lines.enumerated() {
            let plan = line.spec.sampling ?? SamplingPlan(samples: variants)
            let mine = results[(pair * variants)..<((pair + 1) * variants)]
            let passing = mine.filter { plan.passes($0.scores) }
            let best = passing.sorted { SamplingPlan.ranksAbove(($0.scores, $0.seed), ($1.scores, $1.seed)) }.prefix(plan.keep ?? passing.count)
            faithfulAll += mine.filter(\.faithful).count
            passed += passing.count
            faithfulPassed += passing.filter(\.faithful).count
            kept += best.count
            faithfulKept += best.filter(\.faithful).count
            let keptSeeds = Set(best.map(\.seed))
            verdicts += mine.map { Verdict(pair: pair, seed: $0.seed, scores: $0.scores, faithful: $0.faithful, passed: plan.passes($0.scores),
                                           kept: keptSeeds.contains($0.seed)) }
        }
        return DatasetRow(name: kind.rawValue, pairs: samples, variants: samples * variants, passed: passed, kept: kept,
                          faithfulAll: faithfulAll, faithfulPassed: faithfulPassed, faithfulKept: faithfulKept, verdicts: verdicts)
    }
}
