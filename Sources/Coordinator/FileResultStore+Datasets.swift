import EditContract
import Foundation
import Imaging
import Wire

extension LineOutputs {
    /// The name a variant's picture is staged under until its line ends.
    static func stagedName(variant: Int, picture: Int) -> String { "v\(variant)-\(picture)" }
}

/// Sampled lines' outputs on disk: pictures (PNG in ptp's layout, JPEG at quality 100 in the
/// InstructPix2Pix one, as its script saves them), the recipe's per-pair records, an
/// append-only manifest, and the dataset-wide files.
extension FileResultStore {
    public func writeLine(_ outputs: LineOutputs) throws {
        for item in outputs.pictures {
            for index in outputs.prompts.indices {
                let payload = try load(job: outputs.job, edit: outputs.line, name: LineOutputs.stagedName(variant: item.record.index, picture: index))
                guard payload.elementType == .uint8, payload.shape.count == 3, payload.shape[2] == 3 else {
                    throw StorageError("picture \(index) of variant \(item.record.index) of \(outputs.line) has shape \(payload.shape)")
                }
                let image = RGBImage(width: payload.shape[1], height: payload.shape[0], pixels: payload.bytes)
                let url = outputs.folder.appendingPathComponent(outputs.layout.picturePath(line: outputs.line, seed: item.record.seed, index: index, kept: item.kept))
                try writeAtomically(outputs.layout == .ptp ? try PNGCodec.encode(image) : try JPEGCodec.encode(image, quality: 100), to: url)
            }
        }
        guard outputs.layout != .ptp, outputs.prompts.count == 2 else { return }
        let folder = outputs.folder.appendingPathComponent(outputs.line)
        try writeAtomically(Data(InstructPix2PixRecords.prompt(outputs).utf8), to: folder.appendingPathComponent("prompt.json"))
        let kept = outputs.pictures.filter(\.kept).map(\.record)
        try writeAtomically(Data(kept.map { InstructPix2PixRecords.metadata($0) + "\n" }.joined().utf8),
                            to: folder.appendingPathComponent("metadata.jsonl"))
    }

    public func appendManifest(_ lines: [String], to folder: URL, after length: Int) throws -> Int {
        try appendDurably(Data(lines.map { $0 + "\n" }.joined().utf8), to: folder.appendingPathComponent(ManifestLine.fileName), after: length)
    }

    public func writeDatasetFiles(in folder: URL, layout: OutputLayout) throws {
        guard layout != .ptp else { return }
        let pairs = try InstructPix2PixRecords.pairs(in: folder)
        if layout == .hf { try HuggingFaceShards.write(pairs, to: folder) }
        // seeds.json last: once it is there, the dataset is whole (shards included).
        try writeAtomically(Data(InstructPix2PixRecords.seedsJSON(pairs).utf8), to: folder.appendingPathComponent("seeds.json"))
    }
}
