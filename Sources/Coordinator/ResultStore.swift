import Foundation
import Imaging
import NIOCore
import Wire

/// Intermediate tensors (stage-1 outputs, finished images) kept in the coordinator's state
/// folder until an edit's outputs are written, and the outputs themselves: every file written
/// atomically, the manifest derived from the journal's records.
public struct ResultStore {
    let state: URL
    /// Blobs on disk: zstd with shuffling (they are read back only here).
    let codec = TensorCodec(zstdLevel: 3, shuffle: true)

    /// Blobs under `state`/blobs.
    public init(state: URL) { self.state = state }

    func blobURL(job: String, edit: String, name: String) -> URL {
        state.appendingPathComponent("blobs").appendingPathComponent(job).appendingPathComponent(edit).appendingPathComponent(name)
    }

    func save(_ tensor: TensorPayload, job: String, edit: String, name: String) throws {
        var buffer = ByteBuffer()
        try codec.encode(tensor, into: &buffer)
        let url = blobURL(job: job, edit: edit, name: name)
        try writeAtomically(Data(buffer.readableBytesView), to: url)
    }

    func load(job: String, edit: String, name: String) throws -> TensorPayload {
        let data = try Data(contentsOf: blobURL(job: job, edit: edit, name: name))
        var buffer = ByteBuffer(bytes: data)
        return try codec.decode(from: &buffer)
    }

    /// Image `index` of a stored stage-1 output [prompts, C, h, w], as [1, C, h, w].
    func stageOneSlice(job: String, edit: String, index: Int) throws -> TensorPayload {
        let all = try load(job: job, edit: edit, name: "stage1")
        guard all.shape.count == 4, index < all.shape[0] else { throw SubmissionError("stage-1 output of \(edit) has shape \(all.shape)") }
        let per = all.bytes.count / all.shape[0]
        return TensorPayload(name: "input", elementType: all.elementType, shape: [1] + all.shape.dropFirst(),
                             bytes: Array(all.bytes[(index * per)..<((index + 1) * per)]))
    }

    /// Writes the edit's images and grid into OUTPUT/<edit id>/.
    func writeOutputs(job: JobRecord, edit: EditRecord) throws -> [String] {
        let images = try (0..<edit.prompts).map { index -> RGBImage in
            let payload = try load(job: job.id, edit: edit.id, name: "image-\(index)")
            guard payload.elementType == .uint8, payload.shape.count == 3, payload.shape[2] == 3 else {
                throw SubmissionError("image \(index) of \(edit.id) has shape \(payload.shape)")
            }
            return RGBImage(width: payload.shape[1], height: payload.shape[0], pixels: payload.bytes)
        }
        // The images of one edit come from one model at one size; a worker that says otherwise
        // fails this edit, not the coordinator.
        if let first = images.first, let other = images.first(where: { $0.width != first.width || $0.height != first.height }) {
            throw SubmissionError("the images of \(edit.id) differ in size (\(first.width)x\(first.height) and \(other.width)x\(other.height))")
        }
        let folder = job.output.appendingPathComponent(edit.id)
        return try EditOutputs.write(images, to: folder).map { $0.lastPathComponent }
    }

    /// OUTPUT/manifest.jsonl: one line per finished or failed edit of every job writing to
    /// OUTPUT, in submission order, written atomically from the records (so a restart never
    /// leaves a duplicate or a torn line).
    func writeManifest(_ jobs: [JobRecord], to output: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let lines = try jobs.flatMap { job in
            try job.editOrder.compactMap { id -> String? in
                guard let edit = job.edits[id], let line = ManifestLine(edit, in: job) else { return nil }
                return String(decoding: try encoder.encode(line), as: UTF8.self)
            }
        }
        try writeAtomically(Data((lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n")).utf8),
                            to: output.appendingPathComponent("manifest.jsonl"))
    }

    func removeBlobs(job: String, edit: String) {
        try? FileManager.default.removeItem(at: state.appendingPathComponent("blobs").appendingPathComponent(job).appendingPathComponent(edit))
    }
}
