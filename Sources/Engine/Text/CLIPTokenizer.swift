import EditContract
import Foundation

/// CLIP's byte-level BPE tokenizer, read from a model's `vocab.json` + `merges.txt` (or
/// `tokenizer.json`), producing the ids transformers' CLIPTokenizer produces.
struct CLIPTokenizer: Sendable {
    let vocabulary: [String: Int]
    private let tokenText: [Int: String]
    private let mergeRanks: [String: Int]  // "left right" -> rank
    let startToken: Int
    let endToken: Int
    let padToken: Int
    /// Tokens per sequence, start and end included (77 for CLIP).
    let maximumLength: Int

    init(vocabulary: [String: Int], merges: [(String, String)], padToken: String = "<|endoftext|>", maximumLength: Int = 77) throws {
        self.vocabulary = vocabulary
        var text: [Int: String] = [:]
        for (token, id) in vocabulary { text[id] = token }
        tokenText = text
        var ranks: [String: Int] = [:]
        for (rank, pair) in merges.enumerated() where ranks[pair.0 + " " + pair.1] == nil {
            ranks[pair.0 + " " + pair.1] = rank
        }
        mergeRanks = ranks
        guard let start = vocabulary["<|startoftext|>"], let end = vocabulary["<|endoftext|>"] else {
            throw ModelConfigurationError("the tokenizer vocabulary has no <|startoftext|> or <|endoftext|> token")
        }
        guard let pad = vocabulary[padToken] else {
            throw ModelConfigurationError("the tokenizer's pad token '\(padToken)' is not in its vocabulary")
        }
        startToken = start
        endToken = end
        self.padToken = pad
        self.maximumLength = maximumLength
    }

    /// Loads the tokenizer files of a model directory.
    init(files: TokenizerFiles) throws {
        let vocabulary: [String: Int]
        let merges: [(String, String)]
        switch files.source {
        case .vocabularyAndMerges(let vocabularyURL, let mergesURL):
            vocabulary = try Self.readVocabulary(vocabularyURL)
            merges = try Self.readMerges(mergesURL)
        case .tokenizerJSON(let url):
            (vocabulary, merges) = try Self.readTokenizerJSON(url)
        }
        var pad = "<|endoftext|>"
        var length = 77
        if let config = files.config {
            if let value = config.values["pad_token"] { pad = value.stringValue ?? value["content"]?.stringValue ?? pad }
            // Some configs carry a huge sentinel for "no limit"; CLIP's position table has 77.
            if let limit = try config.optionalInt("model_max_length"), limit > 0, limit < 100_000 { length = limit }
        }
        try self.init(vocabulary: vocabulary, merges: merges, padToken: pad, maximumLength: length)
    }

    static func readVocabulary(_ url: URL) throws -> [String: Int] {
        guard let data = try? Data(contentsOf: url), let object = (try? JSONValue.parse(data))?.objectValue else {
            throw ModelDirectoryError(path: url.path, problem: "is not a JSON object of token ids", fix: "restore vocab.json from the original model")
        }
        var vocabulary: [String: Int] = [:]
        for (token, id) in object {
            guard let id = id.intValue else {
                throw ModelDirectoryError(path: url.path, problem: "maps '\(token)' to a non-integer", fix: "restore vocab.json from the original model")
            }
            vocabulary[token] = id
        }
        return vocabulary
    }

    static func readMerges(_ url: URL) throws -> [(String, String)] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw ModelDirectoryError(path: url.path, problem: "cannot be read as UTF-8", fix: "restore merges.txt from the original model")
        }
        var merges: [(String, String)] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.hasPrefix("#version") || line.isEmpty { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw ModelDirectoryError(path: url.path, problem: "line \(number + 1) is not two symbols separated by a space",
                                          fix: "restore merges.txt from the original model")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return merges
    }

    /// The BPE model of a tokenizers-library file: `model.vocab`, `model.merges` (as "a b"
    /// strings or [a, b] pairs), and the special tokens of `added_tokens`, which may be listed
    /// only there. Anything malformed is an error naming the entry.
    static func readTokenizerJSON(_ url: URL) throws -> ([String: Int], [(String, String)]) {
        func refuse(_ problem: String) -> ModelDirectoryError {
            ModelDirectoryError(path: url.path, problem: problem, fix: "use the model's original tokenizer.json, or vocab.json + merges.txt")
        }
        guard let data = try? Data(contentsOf: url), let root = try? JSONValue.parse(data) else { throw refuse("is not JSON") }
        guard let model = root["model"], let vocabularyObject = model["vocab"]?.objectValue, let mergeList = model["merges"]?.arrayValue else {
            throw refuse("has no BPE model with 'vocab' and 'merges'")
        }
        if let type = model["type"]?.stringValue, type != "BPE" { throw refuse("holds a \(type) model; CLIP's tokenizer is BPE") }
        var vocabulary: [String: Int] = [:]
        for (token, id) in vocabularyObject {
            guard let id = id.intValue else { throw refuse("model.vocab maps '\(token)' to a non-integer") }
            vocabulary[token] = id
        }
        for (index, item) in (root["added_tokens"]?.arrayValue ?? []).enumerated() {
            guard let content = item["content"]?.stringValue, let id = item["id"]?.intValue else {
                throw refuse("added_tokens[\(index)] has no 'content' and integer 'id'")
            }
            vocabulary[content] = id
        }
        var merges: [(String, String)] = []
        for (index, item) in mergeList.enumerated() {
            if let text = item.stringValue {
                let parts = text.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw refuse("model.merges[\(index)] is not two symbols separated by a space") }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = item.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue {
                merges.append((a, b))
            } else {
                throw refuse("model.merges[\(index)] is neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        return (vocabulary, merges)
    }

    /// Token ids of `text`, without start, end or padding.
    func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        // Special tokens written in the prompt are matched before any clean-up, as added tokens are.
        var remaining = Substring(text)
        while !remaining.isEmpty {
            var nearest: (Range<Substring.Index>, Int)?
            for special in CLIPPreTokenizer.specialTokens {
                if let range = remaining.range(of: special), nearest == nil || range.lowerBound < nearest!.0.lowerBound {
                    nearest = (range, vocabulary[special] ?? endToken)
                }
            }
            let chunk = nearest.map { remaining[..<$0.0.lowerBound] } ?? remaining
            for piece in CLIPPreTokenizer.split(CLIPPreTokenizer.normalize(String(chunk))) {
                ids += bpe(piece).map { vocabulary[$0] ?? endToken }
            }
            guard let (range, id) = nearest else { break }
            ids.append(id)
            remaining = remaining[range.upperBound...]
        }
        return ids
    }

    /// The model input for a prompt: start, tokens, end, then padding to `maximumLength`.
    /// A prompt that does not fit is an error unless `truncate` (which keeps the first
    /// `maximumLength - 2` tokens, as transformers' truncation does).
    func tokenize(_ prompt: String, truncate: Bool = false) throws -> [Int] {
        var ids = encode(prompt)
        let room = maximumLength - 2
        if ids.count > room {
            guard truncate else {
                throw EditError(field: "prompt", problem: "\"\(prompt.prefix(60))\(prompt.count > 60 ? "…" : "")\" is \(ids.count + 2) tokens, over the model's limit of \(maximumLength) (with start and end tokens)",
                                fix: "shorten it, or allow truncation")
            }
            ids = Array(ids.prefix(room))
        }
        let sequence = [startToken] + ids + [endToken]
        return sequence + Array(repeating: padToken, count: maximumLength - sequence.count)
    }

    /// The text of one token alone, as `tokenizer.decode([id])` gives it: bytes decoded as UTF-8
    /// (invalid sequences replaced), the end-of-word marker removed, surrounding space trimmed.
    func decode(token id: Int) -> String {
        guard let text = tokenText[id] else { return "" }
        var bytes: [UInt8] = []
        for character in text {
            if let byte = ByteSymbols.decoder[character] { bytes.append(byte) } else { bytes += Array(String(character).utf8) }
        }
        let decoded = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "</w>", with: " ")
        // Trim as Python's str.strip does: White_Space characters only (not zero-width ones).
        let scalars = decoded.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }

    /// Byte-level BPE of one piece: the lowest-ranked adjacent pair is merged everywhere,
    /// left to right, until no ranked pair remains.
    func bpe(_ piece: String) -> [String] {
        var word = Array(piece.utf8).map { String(ByteSymbols.encoder[Int($0)]) }
        guard !word.isEmpty else { return [] }
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, first: String, second: String)?
            for (a, b) in zip(word, word.dropFirst()) {
                if let rank = mergeRanks[a + " " + b], best == nil || rank < best!.rank { best = (rank, a, b) }
            }
            guard let (_, first, second) = best else { break }
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var i = 0
            while i < word.count {
                if i + 1 < word.count && word[i] == first && word[i + 1] == second {
                    merged.append(first + second)
                    i += 2
                } else {
                    merged.append(word[i])
                    i += 1
                }
            }
            word = merged
        }
        return word
    }
}
