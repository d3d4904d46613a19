import Foundation

/// A Parquet file of nullable string and binary columns, optionally grouped into structs (what
/// a Hugging Face dataset's Image feature is: {bytes, path}): one row group, one plain-encoded,
/// uncompressed data page per column (pictures are JPEG already). Written by hand from the
/// format's specification (apache/parquet-format), since no Parquet library is packaged for
/// Swift on Linux.
struct ParquetTable {
    /// A top-level column: a UTF-8 string, or a struct of binary and string fields.
    enum Column {
        case string(name: String, values: [String?])
        /// Fields (name, is UTF-8, values), each as long as the table; the struct itself is
        /// never null.
        case group(name: String, fields: [(name: String, utf8: Bool, values: [[UInt8]?])])
    }

    var columns: [Column]
    /// Key-value metadata of the file (e.g. "huggingface": the dataset's features as JSON).
    var metadata: [(key: String, value: String)]

    var rowCount: Int {
        switch columns.first {
        case .string(_, let values)?: return values.count
        case .group(_, let fields)?: return fields.first?.values.count ?? 0
        case nil: return 0
        }
    }

    /// A leaf column as stored: its path, whether UTF-8, its values, and its largest definition
    /// level (1 for a nullable top-level column, 2 for a nullable field of a nullable struct).
    private struct Leaf {
        var path: [String]
        var utf8: Bool
        var values: [[UInt8]?]
        var maximumLevel: Int
    }

    private var leaves: [Leaf] {
        columns.flatMap { column -> [Leaf] in
            switch column {
            case .string(let name, let values):
                return [Leaf(path: [name], utf8: true, values: values.map { $0.map { Array($0.utf8) } }, maximumLevel: 1)]
            case .group(let name, let fields):
                return fields.map { Leaf(path: [name, $0.name], utf8: $0.utf8, values: $0.values, maximumLevel: 2) }
            }
        }
    }

    /// The whole file.
    func encoded() -> [UInt8] {
        var file: [UInt8] = Array("PAR1".utf8)
        var chunks: [(leaf: Leaf, offset: Int, size: Int)] = []
        for leaf in leaves {
            let offset = file.count
            file += Self.page(leaf)
            chunks.append((leaf, offset, file.count - offset))
        }
        let footer = footer(chunks: chunks)
        file += footer
        withUnsafeBytes(of: UInt32(footer.count).littleEndian) { file += $0 }
        file += Array("PAR1".utf8)
        return file
    }

    /// One data page (v1): its header, the definition levels (RLE, 4-byte length first), then
    /// the present values (PLAIN: 4-byte length, bytes).
    private static func page(_ leaf: Leaf) -> [UInt8] {
        var levels: [UInt8] = []
        // Runs of equal levels: a null is one level below the leaf's largest.
        var runs: [(level: Int, count: Int)] = []
        for value in leaf.values {
            let level = value == nil ? leaf.maximumLevel - 1 : leaf.maximumLevel
            if let last = runs.last, last.level == level { runs[runs.count - 1].count += 1 } else { runs.append((level, 1)) }
        }
        for run in runs {
            var header = UInt64(run.count) << 1
            while header >= 0x80 {
                levels.append(UInt8(header & 0x7F) | 0x80)
                header >>= 7
            }
            levels.append(UInt8(header))
            levels.append(UInt8(run.level))
        }
        var body: [UInt8] = []
        withUnsafeBytes(of: UInt32(levels.count).littleEndian) { body += $0 }
        body += levels
        for value in leaf.values {
            guard let value else { continue }
            withUnsafeBytes(of: UInt32(value.count).littleEndian) { body += $0 }
            body += value
        }
        var header = ThriftCompactWriter()
        header.i32(1, 0)  // DATA_PAGE
        header.i32(2, Int32(body.count))
        header.i32(3, Int32(body.count))
        header.structure(5) { page in
            page.i32(1, Int32(leaf.values.count))
            page.i32(2, 0)  // PLAIN
            page.i32(3, 3)  // RLE
            page.i32(4, 3)  // RLE
        }
        header.stop()
        return header.bytes + body
    }

    private func footer(chunks: [(leaf: Leaf, offset: Int, size: Int)]) -> [UInt8] {
        var meta = ThriftCompactWriter()
        meta.i32(1, 1)
        // The schema, depth first: the root, then each column (a struct with its fields).
        var elements: [(name: String, group: Int?, utf8: Bool)] = [("schema", columns.count, false)]
        for column in columns {
            switch column {
            case .string(let name, _): elements.append((name, nil, true))
            case .group(let name, let fields):
                elements.append((name, fields.count, false))
                elements += fields.map { ($0.name, nil, $0.utf8) }
            }
        }
        meta.structList(2, elements.indices.map { $0 }) { writer, index in
            let element = elements[index]
            if element.group == nil { writer.i32(1, 6) }  // BYTE_ARRAY
            if index > 0 { writer.i32(3, 1) }  // OPTIONAL
            writer.string(4, element.name)
            if let children = element.group { writer.i32(5, Int32(children)) }
            if element.utf8 {
                writer.i32(6, 0)  // UTF8
                writer.structure(10) { logical in logical.structure(1) { _ in } }  // STRING
            }
        }
        meta.i64(3, Int64(rowCount))
        meta.structList(4, [chunks]) { writer, chunks in
            writer.structList(1, chunks) { chunk, item in
                chunk.i64(2, Int64(item.offset))
                chunk.structure(3) { column in
                    column.i32(1, 6)
                    column.i32List(2, [0, 3])
                    column.stringList(3, item.leaf.path)
                    column.i32(4, 0)  // UNCOMPRESSED
                    column.i64(5, Int64(item.leaf.values.count))
                    column.i64(6, Int64(item.size))
                    column.i64(7, Int64(item.size))
                    column.i64(9, Int64(item.offset))
                }
            }
            writer.i64(2, Int64(chunks.reduce(0) { $0 + $1.size }))
            writer.i64(3, Int64(rowCount))
        }
        meta.structList(5, metadata) { writer, pair in
            writer.string(1, pair.key)
            writer.string(2, pair.value)
        }
        meta.string(6, "ptp")
        meta.stop()
        return meta.bytes
    }
}
