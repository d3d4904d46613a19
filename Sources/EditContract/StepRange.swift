/// When attention is injected: a fraction of the steps from the start, or a (start, end) pair
/// of fractions. Injection covers the first, noisiest steps.
public struct StepRange: Sendable, Equatable {
    public var start: Double
    public var end: Double

    public init(start: Double = 0, end: Double) {
        self.start = start
        self.end = end
    }

    /// Checks 0 <= start <= end <= 1, naming `field`.
    public func validate(field: String) throws {
        guard start >= 0, end <= 1, start <= end, start.isFinite, end.isFinite else {
            throw EditError(field: field, problem: "(\(start), \(end)) is not a range of fractions",
                            fix: "give a number in [0, 1], or a pair [start, end] with 0 <= start <= end <= 1")
        }
    }

    /// The steps of a `steps`-step run this range covers for self-attention injection:
    /// int(start*T) ..< int(end*T).
    public func steps(of total: Int) -> Range<Int> {
        let first = Int(start * Double(total)), last = Int(end * Double(total))
        return first..<max(first, last)
    }

    /// The steps the InstructPix2Pix recipe's rule covers: i with start <= i / (T - 1) < end, the
    /// fraction computed as its sampler computes it (a single step counts as 0).
    public func sharingSteps(of total: Int) -> Range<Int> {
        let covered = (0..<max(total, 0)).filter { i in
            let fraction = total > 1 ? Double(i) / Double(total - 1) : 0
            return start <= fraction && fraction < end
        }
        guard let first = covered.first, let last = covered.last else { return 0..<0 }
        return first..<(last + 1)
    }
}

extension StepRange {
    /// A spec's range: a number (a fraction from 0) or a [start, end] pair, checked.
    public init(json value: JSONValue, field: String) throws {
        if let end = value.doubleValue {
            self.init(end: end)
        } else if let pair = value.arrayValue, pair.count == 2, let start = pair[0].doubleValue, let end = pair[1].doubleValue {
            self.init(start: start, end: end)
        } else {
            throw EditError(field: field, problem: "\(value) is neither a number nor a [start, end] pair",
                            fix: "give a fraction of the steps like 0.8, or a pair like [0, 0.8]")
        }
        try validate(field: field)
    }

    /// The short form when the range starts at 0.
    public var json: JSONValue { start == 0 ? .double(end) : .array([.double(start), .double(end)]) }
}
