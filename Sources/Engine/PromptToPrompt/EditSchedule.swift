/// When attention is injected: a fraction of the steps from the start, or a (start, end) pair
/// of fractions. Injection covers the first, noisiest steps.
public struct StepRange: Sendable, Equatable, Codable {
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
}

/// cross_replace_steps: one range for every token, or per-word ranges over a default.
public struct CrossReplaceSchedule: Sendable, Equatable {
    public var defaultRange: StepRange
    public var words: [String: StepRange]

    public init(_ range: StepRange, words: [String: StepRange] = [:]) {
        defaultRange = range
        self.words = words
    }

    /// The alpha table: [steps + 1][edited prompt][77], 1 where the edited prompt's token column
    /// takes the source's attention at that step. Rows int(start*(T+1)) ..< int(end*(T+1)).
    public func table(steps: Int, targets: [PromptWords], length: Int = 77) -> [[[Float]]] {
        let rows = steps + 1
        var table = [[[Float]]](repeating: [[Float]](repeating: [Float](repeating: 0, count: length), count: targets.count), count: rows)
        func apply(_ range: StepRange, prompt: Int, columns: [Int]) {
            let first = Int(range.start * Double(rows)), last = Int(range.end * Double(rows))
            for row in 0..<rows {
                for column in columns where column < length {
                    table[row][prompt][column] = (row >= first && row < last) ? 1 : 0
                }
            }
        }
        for prompt in targets.indices { apply(defaultRange, prompt: prompt, columns: Array(0..<length)) }
        for (word, range) in words.sorted(by: { $0.key < $1.key }) {
            for (prompt, target) in targets.enumerated() {
                let columns = target.tokens(of: word)
                if !columns.isEmpty { apply(range, prompt: prompt, columns: columns) }
            }
        }
        return table
    }
}

extension StepRange {
    /// The steps of a `steps`-step run this range covers for self-attention injection:
    /// int(start*T) ..< int(end*T).
    public func steps(of total: Int) -> Range<Int> {
        let first = Int(start * Double(total)), last = Int(end * Double(total))
        return first..<max(first, last)
    }
}
