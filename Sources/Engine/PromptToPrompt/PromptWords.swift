import EditContract

/// Maps the space-separated words of a prompt to its token positions (BOS = position 0), by
/// decoding each token alone and counting characters, as Prompt-to-Prompt's reference does.
///
/// Unlike the reference, a run of spaces separates two words (the reference splits on single
/// spaces, so a doubled space shifts every later word), and a word given by text matches
/// case-insensitively and ignoring trailing punctuation: "Burger" selects the token of
/// "burger." but not the token of its full stop.
struct PromptWords: Sendable {
    let prompt: String
    /// The prompt's words.
    let words: [String]
    /// Token positions (1-based, after BOS) of each word, all of its tokens.
    let tokenPositions: [[Int]]
    /// Per word, how many of its last tokens are punctuation alone ("." of "burger.").
    private let trailingPunctuationTokens: [Int]

    /// The words of a prompt: split on spaces, empty words dropped (the edit contract's rule).
    static func split(_ prompt: String) -> [String] { EditSpec.words(of: prompt) }

    init(_ prompt: String, tokenizer: CLIPTokenizer) {
        self.prompt = prompt
        words = Self.split(prompt)
        let decoded = tokenizer.encode(prompt).map { tokenizer.decode(token: $0) }
        var positions = [[Int]](repeating: [], count: words.count)
        var punctuation = [Int](repeating: 0, count: words.count)
        var word = 0, consumed = 0
        for (index, text) in decoded.enumerated() {
            guard word < words.count else { break }
            positions[word].append(index + 1)
            let isPunctuation = !text.isEmpty && text.unicodeScalars.allSatisfy { $0.properties.generalCategory.isPunctuation }
            punctuation[word] = isPunctuation ? punctuation[word] + 1 : 0
            consumed += text.unicodeScalars.count
            if consumed >= words[word].unicodeScalars.count {
                word += 1
                consumed = 0
            }
        }
        tokenPositions = positions
        trailingPunctuationTokens = punctuation
    }

    /// Lower case without trailing punctuation: the form words are compared in.
    static func key(_ word: String) -> String {
        var scalars = Array(word.lowercased().unicodeScalars)
        while let last = scalars.last, last.properties.generalCategory.isPunctuation { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }

    /// Indices of the words equal to `word` (see `key`).
    func wordIndices(of word: String) -> [Int] {
        let wanted = Self.key(word)
        return words.indices.filter { Self.key(words[$0]) == wanted }
    }

    /// Token positions of every occurrence of `word` (empty when absent), without tokens of
    /// trailing punctuation alone (unless the word is nothing else).
    func tokens(of word: String) -> [Int] {
        wordIndices(of: word).flatMap { index -> [Int] in
            let all = tokenPositions[index]
            let kept = all.count - trailingPunctuationTokens[index]
            return kept > 0 ? Array(all.prefix(kept)) : all
        }
    }

    /// Token positions of the word at `index`.
    func tokens(atWord index: Int) -> [Int] {
        index >= 0 && index < tokenPositions.count ? tokenPositions[index] : []
    }
}

extension Unicode.GeneralCategory {
    var isPunctuation: Bool {
        switch self {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
}
