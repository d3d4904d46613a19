/// Thrift's compact protocol, as much of it as Parquet's footer and page headers need: structs
/// of integers, strings, lists and nested structs, written field by field in id order.
struct ThriftCompactWriter {
    private(set) var bytes: [UInt8] = []
    private var lastField: [Int16] = [0]

    enum FieldType: UInt8 {
        case i32 = 5, i64 = 6, binary = 8, list = 9, structure = 12
    }

    mutating func field(_ id: Int16, _ type: FieldType) {
        let delta = id - lastField[lastField.count - 1]
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta) << 4 | type.rawValue)
        } else {
            bytes.append(type.rawValue)
            varint(zigzag(Int64(id)))
        }
        lastField[lastField.count - 1] = id
    }

    mutating func i32(_ id: Int16, _ value: Int32) {
        field(id, .i32)
        varint(zigzag(Int64(value)))
    }

    mutating func i64(_ id: Int16, _ value: Int64) {
        field(id, .i64)
        varint(zigzag(value))
    }

    mutating func string(_ id: Int16, _ value: String) {
        field(id, .binary)
        binary(Array(value.utf8))
    }

    /// A struct field: `body` writes its fields.
    mutating func structure(_ id: Int16, _ body: (inout ThriftCompactWriter) -> Void) {
        field(id, .structure)
        nested(body)
    }

    /// A list of structs.
    mutating func structList<Item>(_ id: Int16, _ items: [Item], _ body: (inout ThriftCompactWriter, Item) -> Void) {
        field(id, .list)
        listHeader(count: items.count, type: .structure)
        for item in items { nested { body(&$0, item) } }
    }

    mutating func i32List(_ id: Int16, _ items: [Int32]) {
        field(id, .list)
        listHeader(count: items.count, type: .i32)
        for item in items { varint(zigzag(Int64(item))) }
    }

    mutating func stringList(_ id: Int16, _ items: [String]) {
        field(id, .list)
        listHeader(count: items.count, type: .binary)
        for item in items { binary(Array(item.utf8)) }
    }

    /// Ends the outermost struct.
    mutating func stop() { bytes.append(0) }

    private mutating func nested(_ body: (inout ThriftCompactWriter) -> Void) {
        lastField.append(0)
        body(&self)
        bytes.append(0)
        lastField.removeLast()
    }

    private mutating func listHeader(count: Int, type: FieldType) {
        if count < 15 {
            bytes.append(UInt8(count) << 4 | type.rawValue)
        } else {
            bytes.append(0xF0 | type.rawValue)
            varint(UInt64(count))
        }
    }

    private mutating func binary(_ value: [UInt8]) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    private mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    private func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
}
