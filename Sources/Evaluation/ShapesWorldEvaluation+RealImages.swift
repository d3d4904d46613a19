import EditContract
import Engine
import Foundation
import Imaging

extension ShapesWorldEvaluation {
    public struct RealImageRow: Sendable {
        public let method: InversionMethod
        public let samples: Int
        /// The source branch against the image it inverted.
        public let reconstructionPSNR: Double
        /// The colour-swapped result against the renderer's drawing of the edited scene,
        /// inside and outside the object.
        public let insidePSNR: Double
        public let outsidePSNR: Double
        public let success: Double
    }

    /// Real-image editing with ground truth: an exact render is inverted with its caption and
    /// its object's colour swapped; the result is compared with the drawing of the edited scene.
    public func realImages(_ method: InversionMethod, progress: ((Int, Int) -> Void)? = nil) throws -> RealImageRow {
        var generator = SplitMix64(seed: seed &+ 5000)
        let v = ShapesVocabulary.self
        let cases = (0..<samples).map { _ -> (Scene, Scene) in
            var scene = SceneSampler().sample(using: &generator, objects: 1)
            scene.positionWords = nil
            var target = scene
            target.objects[0].colour = v.colours.filter { $0 != scene.background && $0 != scene.objects[0].colour }.randomElement(using: &generator)!
            return (scene, target)
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-eval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (model, steps, side) = (self.model, self.steps, self.side)
        let scores = try eachSample(samples, progress: progress) { index -> (Double, Double, Double, Bool) in
            let (scene, target) = cases[index]
            let exact = SceneRenderer.render(scene, size: side), wanted = SceneRenderer.render(target, size: side)
            let url = folder.appendingPathComponent("\(index).png")
            try PNGCodec.write(exact, to: url)
            var spec = EditSpec(id: "real-\(index)", source: scene.caption, targets: [target.caption])
            spec.mode = .replace
            spec.steps = steps
            spec.guidance = guidance
            spec.image = url.path
            spec.inversion = method
            spec.superResolution = false
            spec.precision = precision
            try spec.validate()
            let result = try PromptToPromptEditor(model: model).run(spec, picture: try PictureFile.read(url))
            let (source, edited) = (result.images[0], result.images[1])
            let objectMask = SceneDetector.detect(wanted).objects.first?.mask ?? []
            let inside = Self.psnr(edited, wanted, where: objectMask, inside: true)
            let outside = Self.psnr(edited, wanted, where: objectMask, inside: false)
            let ok = SceneDetector.detect(edited).objects.first?.colour == target.objects[0].colour
            return (Self.psnr(source, exact), inside, outside, ok)
        }
        let n = Double(max(samples, 1))
        return RealImageRow(method: method, samples: samples, reconstructionPSNR: scores.reduce(0) { $0 + $1.0 } / n,
                            insidePSNR: scores.reduce(0) { $0 + $1.1 } / n, outsidePSNR: scores.reduce(0) { $0 + $1.2 } / n,
                            success: Double(scores.filter(\.3).count) / n)
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
