import Foundation

/// The text clean-up and word splitting of transformers' CLIPTokenizer (without ftfy): NFC,
/// runs of whitespace to one space, lower case, then the CLIP pattern
/// `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`,
/// matched left to right with the alternatives tried in that order.
enum CLIPPreTokenizer {
    static let specialTokens = ["<|startoftext|>", "<|endoftext|>"]
    static let contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]

    /// NFC, whitespace runs collapsed to one space, per-character lower case.
    static func normalize(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        var inWhitespace = false
        for scalar in text.precomposedStringWithCanonicalMapping.unicodeScalars {
            if scalar.properties.isWhitespace {
                if !inWhitespace { result.append(" ") }
                inWhitespace = true
                continue
            }
            inWhitespace = false
            result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
        return String(result)
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// The pieces of normalised text that BPE encodes, in order.
    static func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [String] = []
        var i = 0
        func matches(_ literal: String, at position: Int) -> Bool {
            let target = Array(literal.unicodeScalars)
            return position + target.count <= scalars.count && Array(scalars[position..<(position + target.count)]) == target
        }
        func piece(_ range: Range<Int>) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[range])
            return String(view)
        }
        while i < scalars.count {
            if let special = specialTokens.first(where: { matches($0, at: i) }) {
                // The byte-level stage splits a special token's text as GPT-2's pattern does.
                let count = special.unicodeScalars.count
                pieces += ["<|", String(special.dropFirst(2).dropLast(2)), "|>"]
                i += count
            } else if let contraction = contractions.first(where: { matches($0, at: i) }) {
                pieces.append(contraction)
                i += contraction.unicodeScalars.count
            } else if isLetter(scalars[i]) {
                var j = i
                while j < scalars.count && isLetter(scalars[j]) { j += 1 }
                pieces.append(piece(i..<j))
                i = j
            } else if isNumber(scalars[i]) {
                pieces.append(piece(i..<(i + 1)))
                i += 1
            } else if scalars[i].properties.isWhitespace {
                i += 1
            } else {
                var j = i
                while j < scalars.count && !scalars[j].properties.isWhitespace && !isLetter(scalars[j]) && !isNumber(scalars[j]) { j += 1 }
                pieces.append(piece(i..<j))
                i = j
            }
        }
        return pieces
    }
}
