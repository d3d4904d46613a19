/// When each edited prompt's tokens take the source's cross-attention: one range for every
/// token, or per-word ranges over a default (the reference's `cross_replace_steps`).
public struct CrossReplaceSchedule: Sendable, Equatable {
    public var defaultRange: StepRange
    /// Word -> its range, for the words of the edited prompts it names.
    public var words: [String: StepRange]

    public init(_ range: StepRange, words: [String: StepRange] = [:]) {
        defaultRange = range
        self.words = words
    }

    /// Checks every range, naming its field (`cross_replace`, `cross_replace.WORD`).
    public func validate() throws {
        try defaultRange.validate(field: words.isEmpty ? "cross_replace" : "cross_replace.default")
        for (word, range) in words.sorted(by: { $0.key < $1.key }) { try range.validate(field: "cross_replace.\(word)") }
    }
}

extension CrossReplaceSchedule {
    /// A spec's `cross_replace`: a range, or {word: range, "default": range} (the default
    /// covering every step when left out).
    public init(json value: JSONValue) throws {
        guard let object = value.objectValue else {
            self.init(try StepRange(json: value, field: "cross_replace"))
            return
        }
        self.init(StepRange(end: 1))
        for (key, item) in object {
            if key == "default" {
                defaultRange = try StepRange(json: item, field: "cross_replace.default")
            } else {
                words[key] = try StepRange(json: item, field: "cross_replace.\(key)")
            }
        }
    }

    public var json: JSONValue {
        guard !words.isEmpty else { return defaultRange.json }
        return .object(words.mapValues(\.json).merging(["default": defaultRange.json]) { word, _ in word })
    }
}
