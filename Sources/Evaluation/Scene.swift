/// One object of a scene.
public struct SceneObject: Sendable, Equatable {
    public var shape: String
    public var colour: String
    public var size: String
    /// Centre, in units of the image side: (0, 0) top left.
    public var x: Double
    public var y: Double
    /// Every shape fits a box of side 2 * radius: the circle of that radius, a square of side
    /// 1.8 * radius, an equilateral triangle (apex up) of side 2 * radius.
    public var radius: Double

    public init(shape: String, colour: String, size: String, x: Double, y: Double, radius: Double) {
        (self.shape, self.colour, self.size, self.x, self.y, self.radius) = (shape, colour, size, x, y, radius)
    }

    /// How far the shape reaches from its centre: (left and right, up, down).
    public var extent: (Double, Double, Double) {
        switch shape {
        case "square": return (0.9 * radius, 0.9 * radius, 0.9 * radius)
        case "triangle":
            let half = radius * 3.0.squareRoot() / 2
            return (radius, half, half)
        default: return (radius, radius, radius)
        }
    }

    /// Whether the point (px, py) is inside the shape.
    @inline(__always)
    func contains(_ px: Double, _ py: Double) -> Bool {
        switch shape {
        case "square":
            let half = 0.9 * radius
            return abs(px - x) <= half && abs(py - y) <= half
        case "triangle":
            let height = radius * 3.0.squareRoot()
            let top = y - height / 2
            guard py >= top && py <= top + height else { return false }
            return abs(px - x) <= (py - top) / height * radius
        default:
            return (px - x) * (px - x) + (py - y) * (py - y) <= radius * radius
        }
    }
}

/// A scene of the shapes world: a background colour, an optional pattern, one or two objects.
public struct Scene: Sendable, Equatable {
    public var background: String
    public var pattern: String?
    public var objects: [SceneObject]
    /// A stated position of a single object ("on the left"...).
    public var positionWords: String?
    /// Whether each object's size is stated in the caption.
    public var sizeStated: [Bool]

    public init(background: String, pattern: String?, objects: [SceneObject], positionWords: String? = nil, sizeStated: [Bool]? = nil) {
        self.background = background
        self.pattern = pattern
        self.objects = objects
        self.positionWords = positionWords
        self.sizeStated = sizeStated ?? Array(repeating: false, count: objects.count)
    }

    /// The caption, e.g. "a big yellow triangle and a small green square on a striped white background".
    public var caption: String {
        let parts = objects.enumerated().map { index, object -> String in
            var words: [String] = []
            if index < sizeStated.count && sizeStated[index] { words.append(object.size) }
            words += [object.colour, object.shape]
            return ShapesVocabulary.article(words[0]) + " " + words.joined(separator: " ")
        }
        var text = parts.joined(separator: " and ")
        if let positionWords { text += " " + positionWords }
        let background = pattern.map { "\($0) \(self.background)" } ?? self.background
        return text + " on \(ShapesVocabulary.article(background)) \(background) background"
    }
}
