import Engine

/// Random scenes from the shapes-world grammar, reproducibly from a seed (the evaluation's
/// own generator; the training data comes from the Python sampler with the same rules).
public struct SceneSampler: Sendable {
    public var twoObjectProbability = 0.25
    public var patternProbability = 0.3
    public var positionProbability = 0.2

    public init() {}

    public func sample(using generator: inout SplitMix64, objects count: Int? = nil) -> Scene {
        let v = ShapesVocabulary.self
        let background = v.colours.randomElement(using: &generator)!
        let pattern = Double.random(in: 0..<1, using: &generator) < patternProbability ? v.patterns.randomElement(using: &generator) : nil
        let objectCount = count ?? (Double.random(in: 0..<1, using: &generator) < twoObjectProbability ? 2 : 1)
        let sizes = (0..<objectCount).map { _ in v.sizes.randomElement(using: &generator)! }
        let stated = (0..<objectCount).map { _ in Bool.random(using: &generator) }
        var colours = v.colours.filter { $0 != background }
        colours.shuffle(using: &generator)
        var objects: [SceneObject] = []
        for i in 0..<objectCount {
            let shape = v.shapes.randomElement(using: &generator)!
            let radius = (objectCount == 2 ? v.pairRadius : v.radius)[sizes[i]]!
            var object = SceneObject(shape: shape, colour: colours[i], size: sizes[i], x: 0.5, y: 0.5, radius: radius)
            let (half, up, down) = object.extent
            object.y = Double.random(in: (up + v.margin)...(1 - down - v.margin), using: &generator)
            if objectCount == 2 {
                let edge = v.margin / 2
                object.x = i == 0 ? Double.random(in: (half + edge)...(0.5 - half - v.pairGap), using: &generator)
                                  : Double.random(in: (0.5 + half + v.pairGap)...(1 - half - edge), using: &generator)
            } else {
                object.x = Double.random(in: (half + v.margin)...(1 - half - v.margin), using: &generator)
            }
            objects.append(object)
        }
        var position: String?
        if objectCount == 1 && Double.random(in: 0..<1, using: &generator) < positionProbability {
            position = v.positions.randomElement(using: &generator)!
            let (half, up, down) = objects[0].extent
            switch position {
            case "on the left": objects[0].x = Double.random(in: (half + v.margin)...max(half + v.margin, 0.35), using: &generator)
            case "on the right": objects[0].x = Double.random(in: min(1 - half - v.margin, 0.65)...(1 - half - v.margin), using: &generator)
            case "at the top": objects[0].y = Double.random(in: (up + v.margin)...max(up + v.margin, 0.35), using: &generator)
            default: objects[0].y = Double.random(in: min(1 - down - v.margin, 0.65)...(1 - down - v.margin), using: &generator)
            }
        }
        return Scene(background: background, pattern: pattern, objects: objects, positionWords: position, sizeStated: stated)
    }
}
