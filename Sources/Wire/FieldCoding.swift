import NIOCore

/// Reading and writing message fields, every read bounded: a malformed or hostile body fails
/// with `WireError.malformed` naming the field, never with an over-read or a huge allocation.
extension ByteBuffer {
    mutating func writeField(_ value: String) {
        let bytes = Array(value.utf8)
        writeInteger(UInt32(bytes.count))
        writeBytes(bytes)
    }

    mutating func writeField(_ value: [UInt8]) {
        writeInteger(UInt32(value.count))
        writeBytes(value)
    }

    mutating func writeField(_ value: [String]) {
        writeInteger(UInt32(value.count))
        for item in value { writeField(item) }
    }

    mutating func readInteger<T: FixedWidthInteger>(field: String, as type: T.Type = T.self) throws -> T {
        guard let value = readInteger(as: T.self) else { throw WireError(.malformed, "\(field): truncated") }
        return value
    }

    mutating func readByteArray(field: String, limit: Int) throws -> [UInt8] {
        let count = Int(try readInteger(field: field, as: UInt32.self))
        guard count <= limit else { throw WireError(.malformed, "\(field): \(count) bytes exceed the limit of \(limit)") }
        guard let bytes = readBytes(length: count) else { throw WireError(.malformed, "\(field): truncated") }
        return bytes
    }

    mutating func readString(field: String, limit: Int = 1 << 20) throws -> String {
        let bytes = try readByteArray(field: field, limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw WireError(.malformed, "\(field): not UTF-8") }
        return text
    }

    mutating func readStrings(field: String, limit: Int = 100_000, each: Int = 1 << 20) throws -> [String] {
        let count = try readCount(field: field, limit: limit, smallest: 4)
        return try (0..<count).map { _ in try readString(field: field, limit: each) }
    }

    mutating func readFixedBytes(field: String, count: Int) throws -> [UInt8] {
        guard let bytes = readBytes(length: count) else { throw WireError(.malformed, "\(field): truncated") }
        return bytes
    }
}

/// Typed fields: booleans as one byte, doubles as their IEEE bits, optionals behind a flag.
extension ByteBuffer {
    mutating func writeField(_ value: Bool) { writeInteger(UInt8(value ? 1 : 0)) }

    mutating func writeField(_ value: Double) { writeInteger(value.bitPattern) }

    mutating func writeField(_ value: String?) {
        writeField(value != nil)
        if let value { writeField(value) }
    }

    mutating func writeField(_ value: Double?) {
        writeField(value != nil)
        if let value { writeField(value) }
    }

    mutating func readOptionalDouble(field: String) throws -> Double? {
        try readBool(field: field) ? try readDouble(field: field) : nil
    }

    mutating func readBool(field: String) throws -> Bool {
        switch try readInteger(field: field, as: UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw WireError(.malformed, "\(field): \(other) is not a boolean")
        }
    }

    mutating func readDouble(field: String) throws -> Double {
        Double(bitPattern: try readInteger(field: field, as: UInt64.self))
    }

    mutating func readOptionalString(field: String, limit: Int = 1 << 20) throws -> String? {
        try readBool(field: field) ? try readString(field: field, limit: limit) : nil
    }

    /// A count of items that each take at least `smallest` bytes: one the body cannot hold is
    /// refused before anything is allocated for it.
    mutating func readCount(field: String, limit: Int, smallest: Int) throws -> Int {
        let count = Int(try readInteger(field: field, as: UInt32.self))
        guard count <= limit else { throw WireError(.malformed, "\(field): \(count) items exceed the limit of \(limit)") }
        guard count <= readableBytes / max(smallest, 1) else { throw WireError(.malformed, "\(field): truncated") }
        return count
    }
}
