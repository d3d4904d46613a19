import Dispatch
import Foundation
import Imaging

/// The shapes world's scores of a model (`ptp eval`): generation fidelity, super-resolution
/// quality, and Prompt-to-Prompt against the no-control baseline for each kind of edit.
public struct ShapesWorldEvaluation: Sendable {
    public let model: DiffusionModel
    public var samples: Int
    public var seed: UInt64
    public var steps: Int?
    /// Classifier-free guidance of stage 1 (default: the model's).
    public var guidance: Double?

    /// The added pattern word's cross-attention weight in the reweight row.
    public var reweightWeight: Double
    /// The arithmetic of every model call.
    public var precision: Precision = .fp32

    public init(model: DiffusionModel, samples: Int, seed: UInt64 = 1, steps: Int? = nil, guidance: Double? = nil, reweightWeight: Double = 4) {
        (self.model, self.samples, self.seed, self.steps, self.guidance) = (model, samples, seed, steps, guidance)
        self.reweightWeight = reweightWeight
    }

    var side: Int { model.defaults.height }

    /// Evaluates samples side by side, one per thread, each single-threaded: the small
    /// shapes-world UNets spend more on waking threads than on work when one image is split
    /// across cores. Results keep their sample order, so scores do not depend on timing.
    func eachSample<T: Sendable>(_ count: Int, progress: ((Int, Int) -> Void)?, _ body: @Sendable (Int) throws -> T) throws -> [T] {
        let threads = ComputeThreads.count
        ComputeThreads.setThreadCount(1)
        defer { ComputeThreads.setThreadCount(threads) }
        let results = SampleResults<T>(count: count, progress: progress)
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            var index = worker
            while index < count {
                results.store(index, Result { try body(index) })
                index += threads
            }
        }
        return try results.values()
    }

    // MARK: - Generation

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

    // MARK: - Super-resolution

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

    public static func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
        var sum = 0.0
        for (x, y) in zip(a.pixels, b.pixels) { let d = Double(x) - Double(y); sum += d * d }
        let mse = sum / Double(a.pixels.count)
        return mse == 0 ? 99 : 10 * log10(255 * 255 / mse)
    }

    // MARK: - Edits

    /// The edits of the table. `reweight` is the paper's use of reweighting with refine: the added
    /// pattern word's attention amplified. `attenuate` asks reweighting alone to take a pattern
    /// away (its word at -1, the caption unchanged).
    public enum EditKind: String, CaseIterable, Sendable {
        case colour = "colour swap", shape = "shape swap", background = "background swap", pattern = "added pattern"
        case reweight = "added pattern, reweighted", attenuate = "pattern word at -1"

        /// The kind's name on the command line.
        public var option: String { String(describing: self) }
    }

    public struct EditRow: Sendable {
        public let kind: EditKind
        public let samples: Int
        /// Prompt-to-Prompt, then the baseline (same seed, edited prompt, no control).
        public let success: (Double, Double)
        /// Object mask IoU with the source image.
        public let objectIoU: (Double, Double)
        /// Object centre shift, in pixels.
        public let centroidShift: (Double, Double)
        /// Mean absolute difference (0-255) outside the objects.
        public let backgroundDifference: (Double, Double)
    }

    /// One edit of each sample: a single-object scene and its edited caption.
    func editCase(_ kind: EditKind, generator: inout SplitMix64) -> (EditSpec, target: Scene, baselinePrompt: String) {
        let v = ShapesVocabulary.self
        var scene = SceneSampler().sample(using: &generator, objects: 1)
        scene.positionWords = nil
        if kind == .pattern || kind == .reweight { scene.pattern = nil }
        if kind == .attenuate { scene.pattern = v.patterns.randomElement(using: &generator) }
        var target = scene
        switch kind {
        case .colour:
            target.objects[0].colour = v.colours.filter { $0 != scene.background && $0 != scene.objects[0].colour }.randomElement(using: &generator)!
        case .shape:
            target.objects[0].shape = v.shapes.filter { $0 != scene.objects[0].shape }.randomElement(using: &generator)!
        case .background:
            target.background = v.colours.filter { $0 != scene.background && $0 != scene.objects[0].colour }.randomElement(using: &generator)!
        case .pattern, .reweight:
            target.pattern = v.patterns.randomElement(using: &generator)!
        case .attenuate:
            target.pattern = nil
        }
        var spec = EditSpec(id: "\(kind.rawValue)", source: scene.caption, targets: [kind == .attenuate ? scene.caption : target.caption])
        spec.steps = steps
        spec.guidance = guidance
        spec.superResolution = false
        spec.precision = precision
        switch kind {
        case .colour, .shape, .background: spec.mode = .replace
        case .pattern: spec.mode = .refine
        case .reweight:
            spec.mode = .refine
            if let added = target.pattern { spec.reweight = [added: reweightWeight] }
        case .attenuate:
            spec.mode = .reweight
            spec.reweight = [scene.pattern!: -1]
        }
        return (spec, target, target.caption)
    }

    public func edits(_ kind: EditKind, progress: ((Int, Int) -> Void)? = nil) throws -> EditRow {
        var generator = SplitMix64(seed: seed &+ 1000 &+ UInt64(EditKind.allCases.firstIndex(of: kind)!))
        let cases = (0..<samples).map { _ in editCase(kind, generator: &generator) }
        let editor = PromptToPromptEditor(model: model)
        let sampler = Sampler(model: model)
        let seed = self.seed
        // Per sample: (success, IoU, shift, background difference) for P2P, then the baseline.
        let scores = try eachSample(samples, progress: progress) { index -> [(Bool, Double, Double, Double)] in
            var (spec, target, baselinePrompt) = cases[index]
            spec.seed = seed &+ UInt64(index)
            let settings = editor.settings(for: spec)
            let output = try sampler.sample(prompts: spec.prompts, settings: settings,
                                            controller: try editor.controller(for: spec, settings: settings, storeAttention: false))
            let pixels = sampler.decode(output, precision: settings.precision)
            let source = RGBImage(tensor: pixels.slice(0..<1)), edited = RGBImage(tensor: pixels.slice(1..<2))
            let baseline = RGBImage(tensor: try sampler.generate(prompt: baselinePrompt, settings: settings))
            let s = SceneDetector.detect(source)
            return [edited, baseline].map { image in
                let found = SceneDetector.detect(image)
                let (i, c, b) = Self.structure(s, found, source, image)
                return (Self.shows(target, found, kind: kind), i, c, b)
            }
        }
        var success = (0, 0)
        var iou = (0.0, 0.0), shift = (0.0, 0.0), background = (0.0, 0.0)
        for pair in scores {
            success.0 += pair[0].0 ? 1 : 0; iou.0 += pair[0].1; shift.0 += pair[0].2; background.0 += pair[0].3
            success.1 += pair[1].0 ? 1 : 0; iou.1 += pair[1].1; shift.1 += pair[1].2; background.1 += pair[1].3
        }
        let n = Double(max(samples, 1))
        return EditRow(kind: kind, samples: samples, success: (Double(success.0) / n, Double(success.1) / n),
                       objectIoU: (iou.0 / n, iou.1 / n), centroidShift: (shift.0 / n, shift.1 / n),
                       backgroundDifference: (background.0 / n, background.1 / n))
    }

    // MARK: - Real images

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
            let editor = PromptToPromptEditor(model: model)
            let output = Sampler(model: model).decode(try editor.runStageOne(spec).output, precision: precision)
            let source = RGBImage(tensor: output.slice(0..<1)), edited = RGBImage(tensor: output.slice(1..<2))
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

    /// Whether the edited image shows the target attribute of the edit.
    static func shows(_ target: Scene, _ found: Detection, kind: EditKind) -> Bool {
        let object = found.objects.first
        switch kind {
        case .colour: return object?.colour == target.objects[0].colour
        case .shape: return object?.shape == target.objects[0].shape
        case .background: return found.background == target.background
        case .pattern, .reweight, .attenuate: return found.pattern == target.pattern
        }
    }

    /// Object IoU, centroid shift (pixels) and mean absolute difference outside both objects.
    static func structure(_ a: Detection, _ b: Detection, _ imageA: RGBImage, _ imageB: RGBImage) -> (Double, Double, Double) {
        let n = imageA.width * imageA.height
        let maskA = a.objects.first?.mask ?? [Bool](repeating: false, count: n)
        let maskB = b.objects.first?.mask ?? [Bool](repeating: false, count: n)
        var intersection = 0, union = 0, outside = 0
        var difference = 0.0
        for i in 0..<n {
            if maskA[i] && maskB[i] { intersection += 1 }
            if maskA[i] || maskB[i] { union += 1 } else {
                outside += 1
                for c in 0..<3 { difference += abs(Double(imageA.pixels[i * 3 + c]) - Double(imageB.pixels[i * 3 + c])) / 3 }
            }
        }
        let iou = union == 0 ? 1 : Double(intersection) / Double(union)
        var shift = Double(imageA.width) / 2
        if let ca = a.objects.first?.centroid, let cb = b.objects.first?.centroid {
            shift = ((ca.x - cb.x) * (ca.x - cb.x) + (ca.y - cb.y) * (ca.y - cb.y)).squareRoot() * Double(imageA.width)
        }
        return (iou, shift, outside == 0 ? 0 : difference / Double(outside))
    }
}

/// Results of samples evaluated in parallel, by index.
final class SampleResults<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private let lock = NSLock()
    private var finished = 0
    /// Called under the lock, so never from two threads at once.
    private let progress: ((Int, Int) -> Void)?

    init(count: Int, progress: ((Int, Int) -> Void)?) {
        slots = Array(repeating: nil, count: count)
        self.progress = progress
    }

    func store(_ index: Int, _ result: Result<T, Error>) {
        lock.lock()
        slots[index] = result
        finished += 1
        progress?(finished, slots.count)
        lock.unlock()
    }

    func values() throws -> [T] { try slots.map { try $0!.get() } }
}
