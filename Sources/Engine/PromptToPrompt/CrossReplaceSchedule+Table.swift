import EditContract

extension CrossReplaceSchedule {
    /// The alpha table: [steps + 1][edited prompt][77], 1 where the edited prompt's token column
    /// takes the source's attention at that step. Rows int(start*(T+1)) ..< int(end*(T+1)).
    func table(steps: Int, targets: [PromptWords], length: Int = 77) -> [[[Float]]] {
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
