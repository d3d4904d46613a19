/// The words and fixed geometry of the embedded model's "shapes world" (see
/// shared/spec/shapes-world.md and training/shapes_world/world.py, which defines the same).
public enum ShapesVocabulary {
    /// The palette, in a fixed order: well-separated, saturated colours.
    public static let palette: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("red", (220, 40, 40)), ("orange", (245, 140, 20)), ("yellow", (240, 220, 40)), ("green", (40, 170, 60)),
        ("blue", (40, 80, 220)), ("purple", (140, 50, 190)), ("white", (245, 245, 245)), ("black", (20, 20, 20)),
    ]
    public static var colours: [String] { palette.map(\.name) }
    public static let shapes = ["circle", "square", "triangle"]
    public static let patterns = ["striped", "dotted"]
    public static let sizes = ["small", "big"]
    public static let positions = ["on the left", "on the right", "at the top", "at the bottom"]

    /// Radii (units of the image side) of single objects and of objects in pairs.
    static let radius: [String: Double] = ["big": 0.27, "small": 0.16]
    static let pairRadius: [String: Double] = ["big": 0.2, "small": 0.14]
    static let pairGap = 0.015
    static let margin = 0.04
    static let patternPeriod = 0.125
    static let dotRadius = 0.03
    static let supersampling = 4

    public static func rgb(_ colour: String) -> (UInt8, UInt8, UInt8)? {
        palette.first { $0.name == colour }?.rgb
    }

    /// The second colour of a patterned background: darker for light colours, lighter for dark.
    public static func patternColour(_ base: (UInt8, UInt8, UInt8)) -> (UInt8, UInt8, UInt8) {
        let luminance = 0.299 * Double(base.0) + 0.587 * Double(base.1) + 0.114 * Double(base.2)
        let target = luminance < 80 ? 255.0 : 0.0
        func mix(_ c: UInt8) -> UInt8 { UInt8((0.55 * Double(c) + 0.45 * target).rounded(.toNearestOrEven)) }
        return (mix(base.0), mix(base.1), mix(base.2))
    }

    /// "an" before a vowel, else "a".
    static func article(_ word: String) -> String { "aeiou".contains(word.first ?? "x") ? "an" : "a" }
}
