/// The settings a line's variants draw uniformly from ranges (a spec's `vary`), as the
/// InstructPix2Pix recipe draws its self-attention threshold and guidance per sample.
public struct VariedValues: Sendable, Equatable {
    /// Self-attention injection: the end of the range from 0.
    public var selfReplace: ClosedRange<Double>?
    /// Cross-attention injection (every word): the end of the range from 0.
    public var crossReplace: ClosedRange<Double>?
    public var guidance: ClosedRange<Double>?

    public init(selfReplace: ClosedRange<Double>? = nil, crossReplace: ClosedRange<Double>? = nil, guidance: ClosedRange<Double>? = nil) {
        (self.selfReplace, self.crossReplace, self.guidance) = (selfReplace, crossReplace, guidance)
    }

    /// The InstructPix2Pix recipe's: p ~ U(0.1, 0.9), guidance ~ U(7.5, 15).
    public static let instructPix2Pix = VariedValues(selfReplace: 0.1...0.9, guidance: 7.5...15)

    /// The keys of a spec's `vary`, in the order values are drawn.
    public enum Key: String, CaseIterable, Sendable {
        case selfReplace = "self_replace", crossReplace = "cross_replace", guidance
    }

    public var isEmpty: Bool { selfReplace == nil && crossReplace == nil && guidance == nil }

    subscript(key: Key) -> ClosedRange<Double>? {
        switch key {
        case .selfReplace: return selfReplace
        case .crossReplace: return crossReplace
        case .guidance: return guidance
        }
    }
}

extension VariedValues {
    /// A spec's `vary`: {"self_replace": [0.1, 0.9], "guidance": [7.5, 15], ...}, each range
    /// checked (fractions for the injections, a scale >= 0 for guidance).
    public init(json value: JSONValue) throws {
        guard let object = value.objectValue else {
            throw EditError(field: "vary", problem: "should map settings to [low, high] ranges",
                            fix: "write e.g. {\"self_replace\": [0.1, 0.9], \"guidance\": [7.5, 15]}")
        }
        self.init()
        for (name, item) in object.sorted(by: { $0.key < $1.key }) {
            guard let key = Key(rawValue: name) else {
                throw EditError(field: "vary.\(name)", problem: "is not a setting variants can vary",
                                fix: "use \(Key.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let pair = item.arrayValue, pair.count == 2, let low = pair[0].doubleValue, let high = pair[1].doubleValue,
                  low.isFinite, high.isFinite, low <= high else {
                throw EditError(field: "vary.\(name)", problem: "\(item) is not a [low, high] range", fix: "write two numbers, low first, e.g. [0.1, 0.9]")
            }
            let bounds: ClosedRange<Double> = key == .guidance ? 0...1000 : 0...1
            guard bounds.contains(low), bounds.contains(high) else {
                throw EditError(field: "vary.\(name)", problem: "[\(low), \(high)] leaves [\(bounds.lowerBound), \(bounds.upperBound)]",
                                fix: key == .guidance ? "give guidance scales >= 0" : "give fractions of the steps in [0, 1]")
            }
            switch key {
            case .selfReplace: selfReplace = low...high
            case .crossReplace: crossReplace = low...high
            case .guidance: guidance = low...high
            }
        }
    }

    public var json: JSONValue {
        .object(Dictionary(uniqueKeysWithValues: Key.allCases.compactMap { key in
            self[key].map { (key.rawValue, JSONValue.array([.double($0.lowerBound), .double($0.upperBound)])) }
        }))
    }
}
