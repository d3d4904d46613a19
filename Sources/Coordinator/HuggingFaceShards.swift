import Foundation
import Imaging

/// A dataset folder's kept pairs as Parquet shards under data/, with the columns and features
/// of the published instructpix2pix-clip-filtered set (original_prompt, original_image,
/// edit_prompt, edited_prompt, edited_image; the pictures as Image features holding the JPEG
/// bytes), named as the Hub names a train split (data/train-00000-of-00003.parquet), so
/// Hugging Face `datasets` loads the folder as it is.
enum HuggingFaceShards {
    /// Rows per shard, and the most picture bytes one holds.
    static let rowsPerShard = 2000
    static let bytesPerShard = 256 << 20

    static let features = """
        {"info": {"features": {"original_prompt": {"dtype": "string", "_type": "Value"}, "original_image": {"_type": "Image"}, \
        "edit_prompt": {"dtype": "string", "_type": "Value"}, "edited_prompt": {"dtype": "string", "_type": "Value"}, \
        "edited_image": {"_type": "Image"}}}}
        """

    static func write(_ pairs: [InstructPix2PixRecords.Pair], to folder: URL) throws {
        var shards: [[(pair: InstructPix2PixRecords.Pair, seed: String)]] = [[]]
        var bytes = 0
        for pair in pairs {
            for seed in pair.seeds {
                let size = pictureSize(folder, pair, seed)
                if !shards[shards.count - 1].isEmpty && (shards[shards.count - 1].count >= rowsPerShard || bytes + size > bytesPerShard) {
                    shards.append([])
                    bytes = 0
                }
                shards[shards.count - 1].append((pair, seed))
                bytes += size
            }
        }
        let data = folder.appendingPathComponent("data")
        let names = shards.indices.map { String(format: "train-%05d-of-%05d.parquet", $0, shards.count) }
        for (rows, name) in zip(shards, names) {
            let pictures = try rows.map { row in
                try (0..<2).map { try Array(Data(contentsOf: folder.appendingPathComponent(row.pair.name).appendingPathComponent("\(row.seed)_\($0).jpg"))) }
            }
            let nulls = [[UInt8]?](repeating: nil, count: rows.count)
            let table = ParquetTable(columns: [
                .string(name: "original_prompt", values: rows.map(\.pair.input)),
                .group(name: "original_image", fields: [("bytes", false, pictures.map { $0[0] }), ("path", true, nulls)]),
                .string(name: "edit_prompt", values: rows.map(\.pair.edit)),
                .string(name: "edited_prompt", values: rows.map(\.pair.output)),
                .group(name: "edited_image", fields: [("bytes", false, pictures.map { $0[1] }), ("path", true, nulls)]),
            ], metadata: [("huggingface", features)])
            try writeAtomically(Data(table.encoded()), to: data.appendingPathComponent(name))
        }
        // Shards of an earlier count are stale.
        let current = Set(names)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: data.path)) ?? []
        where name.hasPrefix("train-") && name.hasSuffix(".parquet") && !current.contains(name) {
            try? FileManager.default.removeItem(at: data.appendingPathComponent(name))
        }
    }

    private static func pictureSize(_ folder: URL, _ pair: InstructPix2PixRecords.Pair, _ seed: String) -> Int {
        (0..<2).reduce(0) { total, index in
            let path = folder.appendingPathComponent(pair.name).appendingPathComponent("\(seed)_\(index).jpg").path
            return total + ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        }
    }
}
