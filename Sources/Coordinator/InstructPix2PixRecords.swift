import Foundation
import Imaging

/// The InstructPix2Pix generated dataset's records, written as its scripts write them (Python's
/// json with its default separators and ASCII escapes): each pair folder's prompt.json and
/// metadata.jsonl (generate_img_dataset.py) and the top folder's seeds.json
/// (prepare_dataset.py), so its training code reads ours unchanged.
enum InstructPix2PixRecords {
    /// A pair folder with kept pictures.
    struct Pair: Equatable {
        var name: String
        var input: String
        var edit: String
        var output: String
        /// The kept variants' seeds, as its script lists them (file names sorted).
        var seeds: [String]
    }

    /// {"input": ..., "edit": ..., "output": ...}
    static func prompt(_ outputs: LineOutputs) -> String {
        let fields = [("input", outputs.prompts[0]), ("edit", outputs.instruction ?? ""), ("output", outputs.prompts[1])]
        return "{" + fields.map { "\(pythonString($0.0)): \(pythonString($0.1))" }.joined(separator: ", ") + "}"
    }

    /// {"seed": ..., "p2p_threshold": ..., "cfg_scale": ..., "clip_sim_0": ..., "clip_sim_1": ...,
    /// "clip_sim_dir": ..., "clip_sim_image": ...}
    static func metadata(_ record: VariantRecord) -> String {
        let guidance = record.values["guidance"] ?? record.run?.settings.guidance
        let fields: [(String, String)] = [
            ("seed", "\(record.seed)"), ("p2p_threshold", pythonNumber(record.values["self_replace"])), ("cfg_scale", pythonNumber(guidance)),
            ("clip_sim_0", pythonNumber(record.scores?.text0)), ("clip_sim_1", pythonNumber(record.scores?.text1)),
            ("clip_sim_dir", pythonNumber(record.scores?.direction)), ("clip_sim_image", pythonNumber(record.scores?.image)),
        ]
        return "{" + fields.map { "\(pythonString($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
    }

    /// Every pair folder of `folder` with kept pictures, by name.
    static func pairs(in folder: URL) throws -> [Pair] {
        let manager = FileManager.default
        var pairs: [Pair] = []
        for name in try manager.contentsOfDirectory(atPath: folder.path).sorted() where !name.hasPrefix(".") {
            let directory = folder.appendingPathComponent(name)
            let promptFile = directory.appendingPathComponent("prompt.json")
            guard manager.fileExists(atPath: promptFile.path) else { continue }
            let seeds = try manager.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix("_0.jpg") }.sorted()
                .map { String($0.prefix { $0 != "_" }) }
            guard !seeds.isEmpty else { continue }
            guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: promptFile)) as? [String: Any],
                  let input = object["input"] as? String, let output = object["output"] as? String else {
                throw StorageError("\(promptFile.path) is not a prompt.json with input and output")
            }
            pairs.append(Pair(name: name, input: input, edit: object["edit"] as? String ?? "", output: output, seeds: seeds))
        }
        return pairs
    }

    /// [["0000000", ["1234", "5678"]], ...]
    static func seedsJSON(_ pairs: [Pair]) -> String {
        "[" + pairs.map { pair in
            "[\(pythonString(pair.name)), [" + pair.seeds.map(pythonString).joined(separator: ", ") + "]]"
        }.joined(separator: ", ") + "]"
    }

    /// A string as Python's json.dumps writes it (ensure_ascii: anything beyond ASCII as \u
    /// escapes, in UTF-16).
    static func pythonString(_ text: String) -> String {
        var out = "\""
        for unit in text.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default: out += String(format: "\\u%04x", unit)
            }
        }
        return out + "\""
    }

    /// A float as Python writes it (the shortest repr that reads back), or null.
    static func pythonNumber(_ value: Double?) -> String {
        guard let value else { return "null" }
        guard value.isFinite else { return value.isNaN ? "NaN" : value > 0 ? "Infinity" : "-Infinity" }
        return "\(value)"
    }
}
