import EditContract
import NIOCore

/// What a task does; its raw value is its name in the journal.
public enum TaskKind: String, Sendable, CaseIterable {
    /// Stage 1 of one or more edits: every prompt of each denoised under attention control.
    case stageOne = "stage1"
    /// One image of one edit to its final picture: decode or super-resolution.
    case finish
    /// One variant of a sampled line, whole: sampled, finished and scored.
    case variants
}

/// A finish task's work: image `index` of an edit (0 the source) from its stage-1 output.
public struct FinishWork: Sendable, Equatable {
    /// The edit's id (for logs and errors).
    public var edit: String
    public var index: Int
    public var spec: FinishSpec
    /// The image's stage-1 output [1, C, h, w].
    public var input: TensorPayload

    public init(edit: String, index: Int, spec: FinishSpec, input: TensorPayload) {
        (self.edit, self.index, self.spec, self.input) = (edit, index, spec, input)
    }
}

/// A task's work, as the coordinator assigns it and a worker runs it.
public enum TaskWork: Sendable, Equatable {
    /// The edits, run in this order, with the pictures their real-image edits name.
    case stageOne([EditEnvelope], pictures: [CarriedPicture])
    case finish(FinishWork)
    case variant(VariantWork)

    public var kind: TaskKind {
        switch self {
        case .stageOne: return .stageOne
        case .finish: return .finish
        case .variant: return .variants
        }
    }

    /// The most edits one stage-1 task carries.
    public static let maximumEdits = 4096

    func encode(into buffer: inout ByteBuffer, codec: TensorCodec) throws {
        switch self {
        case .stageOne(let edits, let pictures):
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(UInt32(edits.count))
            for edit in edits { edit.encode(into: &buffer) }
            buffer.writeInteger(UInt32(pictures.count))
            for picture in pictures { picture.encode(into: &buffer) }
        case .finish(let work):
            buffer.writeInteger(UInt8(2))
            buffer.writeField(work.edit)
            buffer.writeInteger(UInt32(work.index))
            buffer.writeField(work.spec.model)
            buffer.writeInteger(work.spec.precision.wireCode)
            buffer.writeInteger(work.spec.seed)
            buffer.writeField(work.spec.superResolution)
            buffer.writeField(work.spec.prompt)
            try codec.encode(work.input, into: &buffer)
        case .variant(let work):
            buffer.writeInteger(UInt8(3))
            work.encode(into: &buffer)
        }
    }

    static func decode(from buffer: inout ByteBuffer, tensors: inout TensorReader) throws -> TaskWork {
        switch try buffer.readInteger(field: "task kind", as: UInt8.self) {
        case 1:
            let count = try buffer.readCount(field: "edits", limit: maximumEdits, smallest: EditEnvelope.smallestEncoding)
            let edits = try (0..<count).map { _ in try EditEnvelope.decode(from: &buffer) }
            let pictures = try buffer.readCount(field: "pictures", limit: 2 * count, smallest: 8)
            return .stageOne(edits, pictures: try (0..<pictures).map { _ in try CarriedPicture.decode(from: &buffer) })
        case 2:
            let edit = try buffer.readString(field: "edit id", limit: 1024)
            let index = Int(try buffer.readInteger(field: "image index", as: UInt32.self))
            let spec = FinishSpec(model: try buffer.readString(field: "model", limit: EditEnvelope.maximumKeyLength),
                                  precision: try Precision(wireCode: try buffer.readInteger(field: "precision", as: UInt8.self)),
                                  seed: try buffer.readInteger(field: "seed", as: UInt64.self),
                                  superResolution: try buffer.readBool(field: "super_resolution"),
                                  prompt: try buffer.readString(field: "prompt", limit: 1 << 20))
            return .finish(FinishWork(edit: edit, index: index, spec: spec, input: try tensors.read(from: &buffer, in: "assign")))
        case 3:
            return .variant(try VariantWork.decode(from: &buffer))
        case let other:
            throw WireError(.malformed, "assign: unknown task kind \(other)")
        }
    }
}
