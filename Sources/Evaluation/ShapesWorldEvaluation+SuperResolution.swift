import EditContract
import Engine
import Foundation
import Imaging

extension ShapesWorldEvaluation {
    public struct SuperResolutionRow: Sendable {
        /// One scene: what the exact render and stage 2's output show.
        public struct Scene: Sendable {
            public let caption: String
            public let psnr: Double
            public let backgroundKept: Bool
            public let patternKept: Bool
            /// Colours and shapes, as a set.
            public let objectsKept: Bool
            /// "render ...; output ..." as the detector reads them.
            public let detections: String
            public var kept: Bool { backgroundKept && patternKept && objectsKept }
        }

        public let scenes: [Scene]
        public var samples: Int { scenes.count }
        public var meanPSNR: Double { scenes.reduce(0) { $0 + $1.psnr } / Double(max(samples, 1)) }
        public var preservation: Double { share(\.kept) }
        /// The scenes whose attributes did not all survive.
        public var failures: [Scene] { scenes.filter { !$0.kept } }

        /// The fraction of scenes for which `attribute` holds.
        public func share(_ attribute: KeyPath<Scene, Bool>) -> Double {
            Double(scenes.filter { $0[keyPath: attribute] }.count) / Double(max(samples, 1))
        }
    }

    /// SR(downsampled exact render) against the exact render: PSNR, and whether the detected
    /// attributes survive.
    public func superResolution(progress: ((Int, Int) -> Void)? = nil) throws -> SuperResolutionRow {
        guard let stage = model.superResolution else {
            throw EditError(field: "model", problem: "has no super-resolution stage", fix: "evaluate a cascade model")
        }
        let upscaler = SuperResolution(model: model, stage: stage)
        var generator = SplitMix64(seed: seed &+ 17)
        let scenes = (0..<samples).map { _ in SceneSampler().sample(using: &generator) }
        let (seed, side, precision) = (self.seed, self.side, self.precision)
        let scores = try eachSample(samples, progress: progress) { index -> SuperResolutionRow.Scene in
            let exact = SceneRenderer.render(scenes[index], size: side * stage.factor)
            let low = SceneRenderer.downsample(exact, factor: stage.factor)
            let output = RGBImage(tensor: try upscaler.upscale(low.tensor().reshaped([1, 3, side, side]), prompt: scenes[index].caption,
                                                               seed: seed &+ UInt64(index), precision: precision))
            let a = SceneDetector.detect(output), b = SceneDetector.detect(exact)
            // Objects as a set: the detector lists them largest first, and two of one size can
            // come out in either order.
            func objects(_ d: Detection) -> [String] { d.objects.map { "\($0.colour) \($0.shape)" }.sorted() }
            return SuperResolutionRow.Scene(caption: scenes[index].caption, psnr: Self.psnr(output, exact),
                                            backgroundKept: a.background == b.background, patternKept: a.pattern == b.pattern,
                                            objectsKept: objects(a) == objects(b), detections: "render \(b); output \(a)")
        }
        return SuperResolutionRow(scenes: scores)
    }
}
