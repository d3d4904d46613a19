import EditContract
/// The 77x77 token mapping of a word swap: row = source token, column = target token.
struct ReplacementMatrix: Sendable, Equatable {
    let values: [Float]  // length * length, row-major
    let length: Int

    subscript(source: Int, target: Int) -> Float { values[source * length + target] }

    /// Prompts must have the same number of space-separated words (token counts may differ).
    /// Each differing word maps its source tokens to its target tokens: pairwise when their
    /// counts agree, else every source token to every target token with weight 1 / target
    /// count. All other tokens map diagonally, in order. After the last differing word the
    /// reference implementation writes M[j][j] (shifting the trailing tokens when counts
    /// differ); this writes M[i][j].
    init(source: PromptWords, target: PromptWords, length: Int = 77) throws {
        guard source.words.count == target.words.count else {
            throw EditError(field: "mode", problem: "replace needs prompts with the same number of words; the source has \(source.words.count), the target \(target.words.count) (\"\(target.prompt)\")",
                            fix: "use mode refine (or auto) for prompts that add or remove words")
        }
        let changed = source.words.indices.filter { source.words[$0] != target.words[$0] }
        let sourceTokens = changed.map { source.tokens(atWord: $0) }
        let targetTokens = changed.map { target.tokens(atWord: $0) }
        for (index, word) in changed.enumerated() where sourceTokens[index].isEmpty || targetTokens[index].isEmpty {
            let (prompt, text) = sourceTokens[index].isEmpty ? (source.prompt, source.words[word]) : (target.prompt, target.words[word])
            throw EditError(field: "mode", problem: "replace cannot map word \(word + 1) ('\(text)') of \"\(prompt)\": the tokenizer gives it no tokens (or the prompt is over the token limit)",
                            fix: "remove or respell that word, or use mode refine")
        }
        var matrix = [Float](repeating: 0, count: length * length)
        var (i, j, current) = (0, 0, 0)
        while i < length && j < length {
            if current < changed.count, let first = sourceTokens[current].first, first == i {
                let (from, to) = (sourceTokens[current], targetTokens[current])
                if from.count == to.count {
                    for (a, b) in zip(from, to) where a < length && b < length { matrix[a * length + b] = 1 }
                } else {
                    for a in from where a < length {
                        for b in to where b < length { matrix[a * length + b] = 1 / Float(to.count) }
                    }
                }
                current += 1
                i += from.count
                j += to.count
            } else {
                matrix[i * length + j] = 1
                i += 1
                j += 1
            }
        }
        values = matrix
        self.length = length
    }
}
