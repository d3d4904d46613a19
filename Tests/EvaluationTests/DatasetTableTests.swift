import EditContract
import Engine
import Evaluation
import Foundation
import Testing

/// `ptp eval --tables datasets` on the embedded model and its scorer, small: the counts agree
/// with the verdicts, and the kept variants are the filter's best by direction, as the
/// coordinator keeps them.
@Suite("shapes world: the datasets table")
struct DatasetTableTests {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("models/shapes-world")

    @Test("each pair keeps its best passed variants by direction; the counts are the verdicts'", .timeLimit(.minutes(5)))
    func keptAreTheBestPassed() throws {
        let model = try DiffusionModel(directory: Self.models)
        let scorer = try CLIPScorer(directory: Self.models.appendingPathComponent("scorer"))
        let evaluation = ShapesWorldEvaluation(model: model, samples: 2, seed: 3, steps: 4)
        let recipe: [String: JSONValue] = ["recipe": .string("instruct-pix2pix"), "keep": .int(2), "filter": .object([
            "clip_text": .double(0.5), "clip_direction": .double(-1), "clip_image": .double(-1)])]
        let row = try evaluation.dataset(.shape, scorer: scorer, variants: 4, recipe: recipe)
        #expect(row.pairs == 2 && row.variants == 8 && row.verdicts.count == 8)
        #expect(row.passed == row.verdicts.filter(\.passed).count && row.kept == row.verdicts.filter(\.kept).count)
        #expect(row.faithfulAll == row.verdicts.filter(\.faithful).count)
        #expect(row.faithfulKept == row.verdicts.filter { $0.kept && $0.faithful }.count)
        for pair in 0..<2 {
            let mine = row.verdicts.filter { $0.pair == pair }
            let passed = mine.filter(\.passed)
            #expect(passed.allSatisfy { min($0.scores.text0, $0.scores.text1) >= 0.5 })
            #expect(mine.filter { !$0.passed }.allSatisfy { min($0.scores.text0, $0.scores.text1) < 0.5 })
            let best = passed.sorted { SamplingPlan.ranksAbove(($0.scores, $0.seed), ($1.scores, $1.seed)) }.prefix(2)
            #expect(Set(mine.filter(\.kept).map(\.seed)) == Set(best.map(\.seed)))
            #expect(Set(mine.map(\.seed)).count == 4, "a pair's variants have distinct seeds")
        }
    }
}
