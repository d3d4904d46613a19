import EditContract
import Engine
import Evaluation
import Foundation
import Testing

/// `ptp eval --tables real`, small: the three inversions see the same pictures, direct
/// inversion reproduces the picture in this pixel-space model, "photographs" differ from the
/// exact renders the way a camera's do, and the scores are of the edit asked for.
@Suite("shapes world: the real-image table")
struct RealImageTableTests {
    @Test("direct inversion reproduces the picture and keeps the background best; photographs are degraded renders", .timeLimit(.minutes(5)))
    func table() throws {
        let model = try DiffusionModel(directory: DatasetTableTests.models)
        let evaluation = ShapesWorldEvaluation(model: model, samples: 2, seed: 4, steps: 10)
        var rows: [InversionMethod: ShapesWorldEvaluation.RealImageRow] = [:]
        for method in [InversionMethod.ddim, .negativePrompt, .direct] {
            rows[method] = try evaluation.realImages(.colour, method: method, input: .photograph)
        }
        let direct = try #require(rows[.direct]), ddim = try #require(rows[.ddim]), negative = try #require(rows[.negativePrompt])
        // The source branch of direct inversion is the picture itself (the model works in pixels).
        #expect(direct.reconstructionPSNR == 99)
        #expect(ddim.reconstructionPSNR < 60 && negative.reconstructionPSNR < 60)
        #expect(direct.backgroundPSNR > ddim.backgroundPSNR && direct.backgroundPSNR > negative.backgroundPSNR,
                "background PSNR: direct \(direct.backgroundPSNR), ddim \(ddim.backgroundPSNR), negative-prompt \(negative.backgroundPSNR)")
        #expect(direct.samples == 2 && direct.secondsPerImage > 0 && (0...1).contains(direct.success))
        // A photograph keeps the scene (the detector reads it) but not its exact pixels.
        let exact = try evaluation.realImages(.colour, method: .direct, input: .exact)
        #expect(exact.reconstructionPSNR == 99)
        #expect(abs(exact.backgroundPSNR - direct.backgroundPSNR) > 0.01, "photographs scored exactly as exact renders")
    }
}
