import EditContract
import Engine
import Foundation
import Imaging

extension ShapesWorldEvaluation {
    /// The pictures real-image editing is scored on: the renderer's exact pixels, or
    /// "photographs" of the same scenes (`PhotographSimulation`).
    public enum RealInput: String, CaseIterable, Sendable {
        case exact = "exact renders", photograph = "photographs"
    }

    /// The edits real images are scored on (those of the generated-edit table whose result the
    /// renderer can draw).
    public static let realImageEdits: [EditKind] = [.colour, .shape, .background, .pattern]

    public struct RealImageRow: Sendable {
        public let kind: EditKind
        public let method: InversionMethod
        public let input: RealInput
        public let samples: Int
        /// The source branch against the picture it inverted.
        public let reconstructionPSNR: Double
        /// The edited picture against the scene as it was, over the pixels the edit leaves
        /// unchanged (where the drawings of the source and edited scenes agree): how well the
        /// rest of the picture is kept, as PIE-Bench's background PSNR measures it.
        public let backgroundPSNR: Double
        /// The edited picture against the renderer's drawing of the edited scene, over the
        /// pixels the edit changes.
        public let insidePSNR: Double
        /// The share of edits the detector finds done.
        public let success: Double
        /// Mean wall time of one edit, inversion included, on one thread.
        public let secondsPerImage: Double
    }

    /// Real-image editing with ground truth: a single-object scene, as an exact render or a
    /// photograph of it, inverted with its caption by `method` and edited by `kind`; the result
    /// is compared with the drawings of the scene before and after the edit. The cases depend
    /// on the kind and the input only, so the three inversions see the same pictures.
    public func realImages(_ kind: EditKind, method: InversionMethod, input: RealInput,
                           progress: ((Int, Int) -> Void)? = nil) throws -> RealImageRow {
        let kindIndex = UInt64(EditKind.allCases.firstIndex(of: kind) ?? 0)
        var generator = SplitMix64(seed: seed &+ 5000 &+ 100 * kindIndex &+ (input == .photograph ? 50 : 0))
        let side = self.side
        let cases = try (0..<samples).map { _ -> (EditSpec, Scene, Scene, RGBImage) in
            let (spec, scene, target, _) = editCase(kind, generator: &generator)
            let picture = input == .exact ? SceneRenderer.render(scene, size: side)
                : try PhotographSimulation.photograph(of: scene, side: side, generator: &generator)
            return (spec, scene, target, picture)
        }
        let (model, seed) = (self.model, self.seed)
        let scores = try eachSample(samples, progress: progress) { index -> (Double, Double, Double, Bool, Double) in
            var (spec, scene, target, picture) = cases[index]
            spec.id = "real-\(index)"
            spec.seed = seed &+ UInt64(index)
            spec.image = "picture-\(index).png"
            spec.inversion = method
            try spec.validate()
            let start = Date()
            let result = try PromptToPromptEditor(model: model).run(spec, picture: picture)
            let seconds = Date().timeIntervalSince(start)
            let (source, edited) = (result.images[0], result.images[1])
            let (before, after) = (SceneRenderer.render(scene, size: side), SceneRenderer.render(target, size: side))
            let unchanged = Self.unchangedPixels(before, after)
            let kept = Self.psnr(edited, before, where: unchanged, inside: true)
            let changed = Self.psnr(edited, after, where: unchanged, inside: false)
            let done = Self.shows(target, SceneDetector.detect(edited), kind: kind)
            return (Self.psnr(source, picture), kept, changed, done, seconds)
        }
        let n = Double(max(samples, 1))
        func mean(_ value: ((Double, Double, Double, Bool, Double)) -> Double) -> Double { scores.reduce(0) { $0 + value($1) } / n }
        return RealImageRow(kind: kind, method: method, input: input, samples: samples, reconstructionPSNR: mean(\.0),
                            backgroundPSNR: mean(\.1), insidePSNR: mean(\.2), success: mean { $0.3 ? 1 : 0 }, secondsPerImage: mean(\.4))
    }

    /// Per pixel, whether two pictures of one size agree on it exactly.
    static func unchangedPixels(_ a: RGBImage, _ b: RGBImage) -> [Bool] {
        var mask = [Bool](repeating: true, count: a.width * a.height)
        for i in mask.indices {
            let offset = i * 3
            mask[i] = a.pixels[offset] == b.pixels[offset] && a.pixels[offset + 1] == b.pixels[offset + 1] && a.pixels[offset + 2] == b.pixels[offset + 2]
        }
        return mask
    }

    /// PSNR over the pixels inside (or outside) a mask.
    static func psnr(_ a: RGBImage, _ b: RGBImage, where mask: [Bool], inside: Bool) -> Double {
        var sum = 0.0, count = 0
        for i in 0..<(a.width * a.height) where (i < mask.count && mask[i]) == inside {
            for c in 0..<3 { let d = Double(a.pixels[i * 3 + c]) - Double(b.pixels[i * 3 + c]); sum += d * d }
            count += 3
        }
        guard count > 0 else { return 99 }
        let mse = sum / Double(count)
        return mse == 0 ? 99 : 10 * log10(255 * 255 / mse)
    }
}
