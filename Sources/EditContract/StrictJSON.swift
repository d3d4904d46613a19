/// JSON as people write it by hand (batch files, edit specs), read strictly: RFC 8259 only (no
/// trailing commas, comments, NaN or single quotes), a key given twice refused (a silent "last
/// one wins" hides typos), nesting bounded, and every error placed by line and column.
/// Model configs, which Python writes with NaN and Infinity, are read by `JSONValue.parse`.
public enum StrictJSON {
    /// Where and why a text is not JSON.
    public struct SyntaxError: Error, CustomStringConvertible, Equatable {
        public let line: Int
        public let column: Int
        public let problem: String
        public var description: String { "line \(line), column \(column): \(problem)" }
    }

    /// The deepest nesting of arrays and objects accepted.
    public static let maximumDepth = 64

    public static func parse(_ text: String) throws -> JSONValue {
        var reader = Reader(bytes: Array(text.utf8))
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.position == reader.bytes.count else { throw reader.error("unexpected text after the JSON value") }
        return value
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        func error(_ problem: String, at offset: Int? = nil) -> SyntaxError {
            let end = min(offset ?? position, bytes.count)
            var line = 1, column = 1
            for byte in bytes[..<end] {
                if byte == UInt8(ascii: "\n") { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
            }
            return SyntaxError(line: line, column: column, problem: problem)
        }

        var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipSpace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
        }

        mutating func expect(_ literal: String, _ value: JSONValue) throws -> JSONValue {
            let utf8 = Array(literal.utf8)
            guard position + utf8.count <= bytes.count, Array(bytes[position..<(position + utf8.count)]) == utf8 else {
                throw error("expected a value (a string, number, object, array, true, false or null)")
            }
            position += utf8.count
            return value
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard let byte = current else { throw error("the text ends where a value should be") }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("expected a value (a string, number, object, array, true, false or null)")
            }
        }

        mutating func object(depth: Int) throws -> JSONValue {
            guard depth <= StrictJSON.maximumDepth else { throw error("nested deeper than \(StrictJSON.maximumDepth) levels") }
            position += 1
            var members: [String: JSONValue] = [:]
            skipSpace()
            if current == UInt8(ascii: "}") { position += 1; return .object(members) }
            while true {
                skipSpace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a key in double quotes") }
                let start = position
                let key = try string()
                guard members[key] == nil else { throw error("the key \"\(key)\" is given twice in one object", at: start) }
                skipSpace()
                guard current == UInt8(ascii: ":") else { throw error("expected ':' after the key \"\(key)\"") }
                position += 1
                skipSpace()
                members[key] = try value(depth: depth)
                skipSpace()
                switch current {
                case UInt8(ascii: ","):
                    position += 1
                    skipSpace()
                    if current == UInt8(ascii: "}") { throw error("a comma before '}' (JSON allows no trailing comma)") }
                case UInt8(ascii: "}"):
                    position += 1
                    return .object(members)
                default:
                    throw error("expected ',' or '}' after the value of \"\(key)\"")
                }
            }
        }

        mutating func array(depth: Int) throws -> JSONValue {
            guard depth <= StrictJSON.maximumDepth else { throw error("nested deeper than \(StrictJSON.maximumDepth) levels") }
            position += 1
            var items: [JSONValue] = []
            skipSpace()
            if current == UInt8(ascii: "]") { position += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth))
                skipSpace()
                switch current {
                case UInt8(ascii: ","):
                    position += 1
                    skipSpace()
                    if current == UInt8(ascii: "]") { throw error("a comma before ']' (JSON allows no trailing comma)") }
                case UInt8(ascii: "]"):
                    position += 1
                    return .array(items)
                default:
                    throw error("expected ',' or ']' in the list")
                }
            }
        }

        mutating func string() throws -> String {
            let start = position
            position += 1
            var scalars = String.UnicodeScalarView()
            var run = position
            func flush(_ end: Int) { scalars.append(contentsOf: String(decoding: bytes[run..<end], as: UTF8.self).unicodeScalars) }
            while true {
                guard let byte = current else { throw error("a string that never ends", at: start) }
                switch byte {
                case UInt8(ascii: "\""):
                    flush(position)
                    position += 1
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush(position)
                    position += 1
                    guard let escape = current else { throw error("a string that never ends", at: start) }
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"): scalars.append(try unicodeEscape())
                    default: throw error("'\\\(Character(Unicode.Scalar(escape)))' is not a JSON escape", at: position - 2)
                    }
                    run = position
                case 0..<0x20:
                    throw error("a control character inside a string (write it as an escape, e.g. \\n)")
                default:
                    position += 1
                }
            }
        }

        mutating func hex4() throws -> UInt32 {
            guard position + 4 <= bytes.count else { throw error("\\u needs four hex digits") }
            var value: UInt32 = 0
            for byte in bytes[position..<(position + 4)] {
                guard let digit = UInt32(String(Unicode.Scalar(byte)), radix: 16) else { throw error("\\u needs four hex digits") }
                value = value << 4 | digit
            }
            position += 4
            return value
        }

        mutating func unicodeEscape() throws -> Unicode.Scalar {
            let first = try hex4()
            if (0xD800..<0xDC00).contains(first) {
                guard current == UInt8(ascii: "\\"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") else {
                    throw error("a lone surrogate \\u escape")
                }
                position += 2
                let second = try hex4()
                guard (0xDC00..<0xE000).contains(second), let scalar = Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)) else {
                    throw error("a lone surrogate \\u escape")
                }
                return scalar
            }
            guard let scalar = Unicode.Scalar(first) else { throw error("a lone surrogate \\u escape") }
            return scalar
        }

        mutating func number() throws -> JSONValue {
            let start = position
            func digits() -> Int {
                let from = position
                while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
                return position - from
            }
            if current == UInt8(ascii: "-") { position += 1 }
            let integerStart = position
            guard digits() > 0 else { throw error("a number needs digits", at: start) }
            if bytes[integerStart] == UInt8(ascii: "0") && position - integerStart > 1 { throw error("a number may not start with 0", at: start) }
            var integral = true
            if current == UInt8(ascii: ".") {
                position += 1
                integral = false
                guard digits() > 0 else { throw error("a number needs digits after '.'") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                position += 1
                integral = false
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw error("a number needs digits in its exponent") }
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if integral, let int = Int(text) { return .int(int) }
            guard let double = Double(text), double.isFinite else { throw error("the number \(text) is out of range", at: start) }
            return .double(double)
        }
    }
}
