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

    mutating func readStrings(field: String, limit: Int = 100_000) throws -> [String] {
        let count = Int(try readInteger(field: field, as: UInt32.self))
        guard count <= limit else { throw WireError(.malformed, "\(field): \(count) items exceed the limit of \(limit)") }
        return try (0..<count).map { _ in try readString(field: field) }
    }

    mutating func readFixedBytes(field: String, count: Int) throws -> [UInt8] {
        guard let bytes = readBytes(length: count) else { throw WireError(.malformed, "\(field): truncated") }
        return bytes
    }
}
