/// Maps the space-separated words of a prompt to its token positions (BOS = position 0), by
/// decoding each token alone and counting characters, as Prompt-to-Prompt's reference does.
///
/// Unlike the reference, a word given by text matches case-insensitively and ignoring trailing
/// punctuation ("Burger." selects "burger"), and empty words from repeated spaces are skipped
/// instead of shifting every later word.
public struct PromptWords: Sendable {
    public let prompt: String
    /// The prompt split on single spaces.
    public let words: [String]
    /// Token positions (1-based, after BOS) of each word.
    public let tokenPositions: [[Int]]

    public init(_ prompt: String, tokenizer: CLIPTokenizer) {
        self.prompt = prompt
        words = prompt.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let decoded = tokenizer.encode(prompt).map { tokenizer.decode(token: $0) }
        var positions = [[Int]](repeating: [], count: words.count)
        var word = 0, consumed = 0
        for (index, text) in decoded.enumerated() {
            while word < words.count && words[word].unicodeScalars.count == 0 { word += 1 }
            guard word < words.count else { break }
            positions[word].append(index + 1)
            consumed += text.unicodeScalars.count
            if consumed >= words[word].unicodeScalars.count {
                word += 1
                consumed = 0
            }
        }
        tokenPositions = positions
    }

    /// Lower case without trailing punctuation: the form words are compared in.
    public static func key(_ word: String) -> String {
        var scalars = Array(word.lowercased().unicodeScalars)
        while let last = scalars.last, last.properties.generalCategory.isPunctuation { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }

    /// Indices of the words equal to `word` (see `key`).
    public func wordIndices(of word: String) -> [Int] {
        let wanted = Self.key(word)
        return words.indices.filter { Self.key(words[$0]) == wanted }
    }

    /// Token positions of every occurrence of `word` (empty when absent).
    public func tokens(of word: String) -> [Int] {
        wordIndices(of: word).flatMap { tokenPositions[$0] }
    }

    /// Token positions of the word at `index`.
    public func tokens(atWord index: Int) -> [Int] {
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
