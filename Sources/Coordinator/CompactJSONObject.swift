/// Whether a text is one JSON object written compactly (no whitespace, no raw control
/// characters), as canonical JSON is. The coordinator never reads a spec's values, but it writes
/// each spec into a manifest line as it came: a text that is not one such object (from a client
/// other than ptp submit) could break the line or forge its keys, so the manifest writes it as
/// a JSON string instead. A syntax check only: nothing is decoded, nothing is allocated.
enum CompactJSONObject {
    /// Nesting deeper than this is refused (no spec nests more than four levels).
    static let maximumDepth = 64

    static func matches(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        guard bytes.first == UInt8(ascii: "{"), value(&bytes, depth: 0) else { return false }
        return bytes.isEmpty
    }

    private static func value(_ bytes: inout ArraySlice<UInt8>, depth: Int) -> Bool {
        guard depth < maximumDepth, let first = bytes.first else { return false }
        switch first {
        case UInt8(ascii: "{"): return container(&bytes, close: UInt8(ascii: "}"), depth: depth, keyed: true)
        case UInt8(ascii: "["): return container(&bytes, close: UInt8(ascii: "]"), depth: depth, keyed: false)
        case UInt8(ascii: "\""): return string(&bytes)
        case UInt8(ascii: "t"): return literal("true", &bytes)
        case UInt8(ascii: "f"): return literal("false", &bytes)
        case UInt8(ascii: "n"): return literal("null", &bytes)
        default: return number(&bytes)
        }
    }

    /// `{"key":value,...}` or `[value,...]`, possibly empty.
    private static func container(_ bytes: inout ArraySlice<UInt8>, close: UInt8, depth: Int, keyed: Bool) -> Bool {
        bytes.removeFirst()
        if bytes.first == close {
            bytes.removeFirst()
            return true
        }
        while true {
            if keyed {
                guard bytes.first == UInt8(ascii: "\""), string(&bytes), bytes.first == UInt8(ascii: ":") else { return false }
                bytes.removeFirst()
            }
            guard value(&bytes, depth: depth + 1), let next = bytes.popFirst() else { return false }
            if next == close { return true }
            guard next == UInt8(ascii: ",") else { return false }
        }
    }

    private static func string(_ bytes: inout ArraySlice<UInt8>) -> Bool {
        bytes.removeFirst()
        while let byte = bytes.popFirst() {
            switch byte {
            case UInt8(ascii: "\""):
                return true
            case UInt8(ascii: "\\"):
                guard let escape = bytes.popFirst() else { return false }
                if escape == UInt8(ascii: "u") {
                    for _ in 0..<4 {
                        guard let digit = bytes.popFirst(), isHex(digit) else { return false }
                    }
                } else if !Array("\"\\/bfnrt".utf8).contains(escape) {
                    return false
                }
            case ..<0x20:
                return false
            default:
                continue
            }
        }
        return false
    }

    private static func number(_ bytes: inout ArraySlice<UInt8>) -> Bool {
        if bytes.first == UInt8(ascii: "-") { bytes.removeFirst() }
        guard let lead = bytes.first, isDigit(lead) else { return false }
        bytes.removeFirst()
        if lead != UInt8(ascii: "0") { skipDigits(&bytes) }
        if bytes.first == UInt8(ascii: ".") {
            bytes.removeFirst()
            guard let digit = bytes.first, isDigit(digit) else { return false }
            skipDigits(&bytes)
        }
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes.removeFirst()
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") { bytes.removeFirst() }
            guard let digit = bytes.first, isDigit(digit) else { return false }
            skipDigits(&bytes)
        }
        return true
    }

    private static func literal(_ word: String, _ bytes: inout ArraySlice<UInt8>) -> Bool {
        let expected = Array(word.utf8)
        guard bytes.starts(with: expected) else { return false }
        bytes.removeFirst(expected.count)
        return true
    }

    private static func skipDigits(_ bytes: inout ArraySlice<UInt8>) {
        while let byte = bytes.first, isDigit(byte) { bytes.removeFirst() }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private static func isHex(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }
}
