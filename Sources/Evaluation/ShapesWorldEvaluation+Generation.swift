import Engine
import Foundation
import Imaging

extension ShapesWorldEvaluation {
    public struct FidelityRow: Sendable {
        public let name: String
        public let samples: Int
        /// Images that show what their caption says.
        public let correct: Int
        /// Images that also place a pair's objects in the order they are named, left to right.
        public let correctInDrawingOrder: Int
        /// Share right per attribute: background, pattern, colour, shape (a pair's colours and
        /// shapes as the caption names them, in either order).
        public let attributes: [String: Double]
        public var fidelity: Double { Double(correct) / Double(max(samples, 1)) }
        public var fidelityInDrawingOrder: Double { Double(correctInDrawingOrder) / Double(max(samples, 1)) }
    }

    /// Stage-1 images of random captions, read back by the detectors.
    public func generationFidelity(objects: Int?, progress: ((Int, Int) -> Void)? = nil) throws -> FidelityRow {
        var generator = SplitMix64(seed: seed &+ UInt64(objects ?? 0) &* 7919)
        let scenes = (0..<samples).map { _ in SceneSampler().sample(using: &generator, objects: objects) }
        let sampler = Sampler(model: model)
        let (model, seed, steps, side, precision) = (self.model, self.seed, self.steps, self.side, self.precision)
        let guidance = self.guidance.map { Float($0) } ?? model.defaults.guidance
        let detections = try eachSample(samples, progress: progress) { index -> Detection in
            let settings = SamplingSettings(steps: steps ?? model.defaults.steps, guidance: guidance,
                                            seed: seed &+ UInt64(index), height: side, width: side, precision: precision)
            return SceneDetector.detect(RGBImage(tensor: try sampler.generate(prompt: scenes[index].caption, settings: settings)))
        }
        var correct = 0, inOrder = 0
        var attributeHits: [String: Int] = ["background": 0, "pattern": 0, "colour": 0, "shape": 0]
        for (scene, found) in zip(scenes, detections) {
            if ShapesWorldScore.matches(scene, found) { correct += 1 }
            if ShapesWorldScore.matchesInDrawingOrder(scene, found) { inOrder += 1 }
            if found.background == scene.background { attributeHits["background", default: 0] += 1 }
            if found.pattern == scene.pattern { attributeHits["pattern", default: 0] += 1 }
            if found.objects.count == scene.objects.count {
                if found.objects.map(\.colour).sorted() == scene.objects.map(\.colour).sorted() { attributeHits["colour", default: 0] += 1 }
                if found.objects.map(\.shape).sorted() == scene.objects.map(\.shape).sorted() { attributeHits["shape", default: 0] += 1 }
            }
        }
        let name = objects == 1 ? "one object" : objects == 2 ? "two objects" : "all captions"
        return FidelityRow(name: name, samples: samples, correct: correct, correctInDrawingOrder: inOrder,
                           attributes: attributeHits.mapValues { Double($0) / Double(max(samples, 1)) })
    }
}
