import EditContract
import Engine
import Foundation
import Imaging

extension ShapesWorldEvaluation {
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
    func editCase(_ kind: EditKind, generator: inout SplitMix64) -> (EditSpec, source: Scene, target: Scene, baselinePrompt: String) {
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
        return (spec, scene, target, target.caption)
    }

    public func edits(_ kind: EditKind, progress: ((Int, Int) -> Void)? = nil) throws -> EditRow {
        var generator = SplitMix64(seed: seed &+ 1000 &+ UInt64(EditKind.allCases.firstIndex(of: kind)!))
        let cases = (0..<samples).map { _ in editCase(kind, generator: &generator) }
        let editor = PromptToPromptEditor(model: model)
        let sampler = Sampler(model: model)
        let seed = self.seed
        // Per sample: (success, IoU, shift, background difference) for P2P, then the baseline.
        let scores = try eachSample(samples, progress: progress) { index -> [(Bool, Double, Double, Double)] in
            var (spec, _, target, baselinePrompt) = cases[index]
            spec.seed = seed &+ UInt64(index)
            try spec.validate()
            // The edit as `ptp edit` and the workers run it; the baseline from the same settings.
            let result = try editor.run(spec)
            let (source, edited) = (result.images[0], result.images[1])
            let baseline = RGBImage(tensor: try sampler.generate(prompt: baselinePrompt, settings: result.settings))
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
