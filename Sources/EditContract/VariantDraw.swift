/// One variant of a sampled line: its index, the seed of its starting noise and the values drawn
/// for its `vary` ranges. Everything follows from the line's seed and the index alone, so a
/// rerun, a restart or another worker draws the same variant; seeds are distinct within a line
/// (the dataset names pictures by them) and below 2^53 (exact in any JSON reader).
public struct VariantDraw: Sendable, Equatable {
    public var index: Int
    public var seed: UInt64
    public var selfReplace: Double?
    public var crossReplace: Double?
    public var guidance: Double?

    public init(index: Int, seed: UInt64, selfReplace: Double? = nil, crossReplace: Double? = nil, guidance: Double? = nil) {
        (self.index, self.seed, self.selfReplace, self.crossReplace, self.guidance) = (index, seed, selfReplace, crossReplace, guidance)
    }

    /// Variant `index` of a line with seed `lineSeed`, its values drawn from `vary`.
    public init(lineSeed: UInt64, index: Int, vary: VariedValues) {
        let seed = Self.seeds(lineSeed: lineSeed, count: index + 1)[index]
        func draw(_ key: VariedValues.Key, stream: UInt64) -> Double? {
            vary[key].map { $0.lowerBound + Self.uniform(lineSeed, index, stream) * ($0.upperBound - $0.lowerBound) }
        }
        self.init(index: index, seed: seed, selfReplace: draw(.selfReplace, stream: 1), crossReplace: draw(.crossReplace, stream: 2),
                  guidance: draw(.guidance, stream: 3))
    }

    /// The seeds of a line's first `count` variants: each drawn from (line seed, index), drawn
    /// again while it equals an earlier one's.
    public static func seeds(lineSeed: UInt64, count: Int) -> [UInt64] {
        var seen = Set<UInt64>()
        return (0..<count).map { index in
            var attempt: UInt64 = 0
            while true {
                let seed = bits(lineSeed, index, stream: attempt << 8) >> 11
                if seen.insert(seed).inserted { return seed }
                attempt += 1
            }
        }
    }

    /// The drawn values by their `vary` keys.
    public var values: [VariedValues.Key: Double] {
        var values: [VariedValues.Key: Double] = [:]
        (values[.selfReplace], values[.crossReplace], values[.guidance]) = (selfReplace, crossReplace, guidance)
        return values
    }

    /// A uniform number in [0, 1) (53 bits).
    static func uniform(_ lineSeed: UInt64, _ index: Int, _ stream: UInt64) -> Double {
        Double(bits(lineSeed, index, stream: stream) >> 11) * 0x1p-53
    }

    /// 64 well-mixed bits of (line seed, index, stream): SplitMix64's finaliser over each input
    /// in turn.
    static func bits(_ lineSeed: UInt64, _ index: Int, stream: UInt64) -> UInt64 {
        mix(mix(mix(lineSeed &+ 0x9E37_79B9_7F4A_7C15) ^ UInt64(truncatingIfNeeded: index)) ^ stream)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension EditSpec {
    /// Variant `index` of this sampled line, as a plain edit: the line's spec with the variant's
    /// seed and drawn values, nothing left to sample.
    public func variant(_ index: Int) -> (spec: EditSpec, draw: VariantDraw) {
        let draw = VariantDraw(lineSeed: seed, index: index, vary: vary)
        var spec = self
        spec.seed = draw.seed
        if let value = draw.selfReplace { spec.selfReplace = StepRange(end: value) }
        if let value = draw.crossReplace { spec.crossReplace = CrossReplaceSchedule(StepRange(end: value)) }
        if let value = draw.guidance { spec.guidance = value }
        (spec.sampling, spec.vary, spec.recipe) = (nil, VariedValues(), nil)
        return (spec, draw)
    }
}
