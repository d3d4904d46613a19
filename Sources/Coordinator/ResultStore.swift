import EditContract
import Foundation
import Imaging
import NIOCore
import Wire

/// Where results wait and land: each edit's intermediate tensors (stage-1 outputs, finished
/// images) until its outputs are written, then its pictures and the manifest of its output
/// folder. Used from the storage queue, one call at a time.
public protocol ResultStore: Sendable {
    /// Makes the output folder (and its parents); whether it already holds a manifest.
    func prepareOutput(_ folder: URL) throws -> Bool
    /// Keeps a tensor of an edit under `name` (stage1, image-N).
    func save(_ tensor: TensorPayload, job: String, edit: String, name: String) throws
    func load(job: String, edit: String, name: String) throws -> TensorPayload
    /// Writes the edit's pictures (its `count` saved images and their grid) into `folder`.
    func writePictures(job: String, edit: String, count: Int, to folder: URL) throws
    /// Replaces `folder`'s manifest.jsonl with these lines.
    func writeManifest(_ lines: [ManifestLine], to folder: URL) throws
    /// Forgets an edit's (or a sampled line's) intermediate tensors (its outputs are written).
    func removeTensors(job: String, edit: String)
    /// Writes a sampled line's pictures from its staged tensors (`LineOutputs.stagedName`), and
    /// the files its layout keeps per line.
    func writeLine(_ outputs: LineOutputs) throws
    /// Appends lines to `folder`'s manifest.jsonl after cutting it back to `length` (what the
    /// journal last recorded); returns its new length.
    func appendManifest(_ lines: [String], to folder: URL, after length: Int) throws -> Int
    /// The files of a dataset that span its folder, made from what the folder holds.
    func writeDatasetFiles(in folder: URL, layout: OutputLayout) throws
    /// Keeps a picture a client sent, by its digest (kept already: nothing to do).
    func keepCarriedPicture(_ picture: CarriedPicture) throws
    func carriedPicture(_ digest: String) throws -> CarriedPicture
    /// The pictures kept, by digest, with their sizes (read when the coordinator starts).
    func carriedPictures() throws -> [String: Int]
}

extension ResultStore {
    /// Image `index` of a saved stage-1 output [prompts, C, h, w], as [1, C, h, w].
    func stageOneSlice(job: String, edit: String, index: Int) throws -> TensorPayload {
        let all = try load(job: job, edit: edit, name: "stage1")
        guard all.shape.count == 4, index < all.shape[0] else { throw StorageError("stage-1 output of \(edit) has shape \(all.shape)") }
        let per = all.bytes.count / all.shape[0]
        return TensorPayload(name: "input", elementType: all.elementType, shape: [1] + all.shape.dropFirst(),
                             bytes: Array(all.bytes[(index * per)..<((index + 1) * per)]))
    }

    /// The saved images of an edit as pictures. Every image of one edit comes from one model
    /// at one size; a worker that says otherwise fails this edit, not the coordinator.
    func pictures(job: String, edit: String, count: Int) throws -> [RGBImage] {
        let images = try (0..<count).map { index -> RGBImage in
            let payload = try load(job: job, edit: edit, name: "image-\(index)")
            guard payload.elementType == .uint8, payload.shape.count == 3, payload.shape[2] == 3 else {
                throw StorageError("image \(index) of \(edit) has shape \(payload.shape)")
            }
            return RGBImage(width: payload.shape[1], height: payload.shape[0], pixels: payload.bytes)
        }
        if let first = images.first, let other = images.first(where: { $0.width != first.width || $0.height != first.height }) {
            throw StorageError("the images of \(edit) differ in size (\(first.width)x\(first.height) and \(other.width)x\(other.height))")
        }
        return images
    }
}

/// Results on disk: tensors in STATE/blobs/JOB/EDIT/ (zstd, shuffled), pictures and manifests in
/// the output folders; every file written atomically.
public struct FileResultStore: ResultStore {
    let state: URL
    let codec = TensorCodec(zstdLevel: 3, shuffle: true)

    /// Tensors under `state`/blobs.
    public init(state: URL) { self.state = state }

    func folder(job: String, edit: String) -> URL {
        state.appendingPathComponent("blobs").appendingPathComponent(job).appendingPathComponent(edit)
    }

    public func prepareOutput(_ folder: URL) throws -> Bool {
        try prepareOutputFolder(folder)
        return FileManager.default.fileExists(atPath: folder.appendingPathComponent(ManifestLine.fileName).path)
    }

    public func save(_ tensor: TensorPayload, job: String, edit: String, name: String) throws {
        var buffer = ByteBuffer()
        try codec.encode(tensor, into: &buffer)
        try writeAtomically(Data(buffer.readableBytesView), to: folder(job: job, edit: edit).appendingPathComponent(name))
    }

    public func load(job: String, edit: String, name: String) throws -> TensorPayload {
        var buffer = ByteBuffer(bytes: try Data(contentsOf: folder(job: job, edit: edit).appendingPathComponent(name)))
        return try codec.decode(from: &buffer)
    }

    public func writePictures(job: String, edit: String, count: Int, to folder: URL) throws {
        try EditOutputs.write(try pictures(job: job, edit: edit, count: count), to: folder)
    }

    public func writeManifest(_ lines: [ManifestLine], to folder: URL) throws {
        let text = try lines.map { try $0.text() + "\n" }.joined()
        try writeAtomically(Data(text.utf8), to: folder.appendingPathComponent(ManifestLine.fileName))
    }

    public func removeTensors(job: String, edit: String) {
        try? FileManager.default.removeItem(at: folder(job: job, edit: edit))
    }

    /// STATE/pictures/DIGEST: content-addressed, so a picture is written once and a file there
    /// is whole (written atomically) and what its name says (checked on arrival and on reading).
    var pictureFolder: URL { state.appendingPathComponent("pictures") }

    public func keepCarriedPicture(_ picture: CarriedPicture) throws {
        let url = pictureFolder.appendingPathComponent(picture.digest)
        // Kept already and whole: nothing to write (a damaged copy is replaced).
        if let kept = try? Data(contentsOf: url), CarriedPicture.digest(of: kept) == picture.digest { return }
        try writeAtomically(Data(picture.bytes), to: url)
    }

    public func carriedPicture(_ digest: String) throws -> CarriedPicture {
        guard PictureDigest.isWellFormed(digest) else { throw StorageError("'\(digest.prefix(64))' is not a picture digest") }
        let picture = CarriedPicture(digest: digest, bytes: [UInt8](try Data(contentsOf: pictureFolder.appendingPathComponent(digest))))
        guard picture.isIntact else { throw StorageError("the kept picture \(digest.prefix(12)) is damaged (its bytes no longer match its digest)") }
        return picture
    }

    public func carriedPictures() throws -> [String: Int] {
        guard FileManager.default.fileExists(atPath: pictureFolder.path) else { return [:] }
        var kept: [String: Int] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: pictureFolder.path) where PictureDigest.isWellFormed(name) {
            let size = (try? FileManager.default.attributesOfItem(atPath: pictureFolder.appendingPathComponent(name).path)[.size] as? NSNumber)??.intValue
            if let size { kept[name] = size }
        }
        return kept
    }
}
