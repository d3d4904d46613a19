import EditContract
import NIOCore

/// One edit of a stage-1 task, as the worker ran it.
public struct StageOneEdit: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// How it ran, in how many seconds, and its output [prompts, C, h, w] (latents, or
        /// pixels for pixel-space models).
        case ran(EditRun, seconds: Double, output: TensorPayload)
        /// It cannot run (invalid for this model), with why: it fails alone, not its task.
        case failed(reason: String)
    }

    public var id: String
    public var outcome: Outcome

    public init(id: String, outcome: Outcome) { (self.id, self.outcome) = (id, outcome) }
}

/// A finish task's picture.
public struct FinishedImage: Sendable, Equatable {
    public var seconds: Double
    /// [height, width, 3] bytes.
    public var image: TensorPayload

    public init(seconds: Double, image: TensorPayload) { (self.seconds, self.image) = (seconds, image) }
}

/// A task's result, as a worker sends it back: the mirror of `TaskWork`.
public enum TaskResult: Sendable, Equatable {
    /// One entry per edit of the task, in its order.
    case stageOne([StageOneEdit])
    case finish(FinishedImage)
    case variant(VariantOutcome)

    public var kind: TaskKind {
        switch self {
        case .stageOne: return .stageOne
        case .finish: return .finish
        case .variant: return .variants
        }
    }

    func encode(into buffer: inout ByteBuffer, codec: TensorCodec) throws {
        switch self {
        case .stageOne(let edits):
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(UInt32(edits.count))
            for edit in edits {
                buffer.writeField(edit.id)
                switch edit.outcome {
                case .ran(let run, let seconds, let output):
                    buffer.writeInteger(UInt8(1))
                    run.encode(into: &buffer)
                    buffer.writeField(seconds)
                    try codec.encode(output, into: &buffer)
                case .failed(let reason):
                    buffer.writeInteger(UInt8(2))
                    buffer.writeField(reason)
                }
            }
        case .finish(let finished):
            buffer.writeInteger(UInt8(2))
            buffer.writeField(finished.seconds)
            try codec.encode(finished.image, into: &buffer)
        case .variant(let outcome):
            buffer.writeInteger(UInt8(3))
            try outcome.encode(into: &buffer, codec: codec)
        }
    }

    static func decode(from buffer: inout ByteBuffer, tensors: inout TensorReader) throws -> TaskResult {
        switch try buffer.readInteger(field: "result kind", as: UInt8.self) {
        case 1:
            let count = try buffer.readCount(field: "edits", limit: TaskWork.maximumEdits, smallest: 5)
            return .stageOne(try (0..<count).map { _ in
                let id = try buffer.readString(field: "edit id", limit: 1024)
                switch try buffer.readInteger(field: "outcome", as: UInt8.self) {
                case 1:
                    let run = try EditRun.decode(from: &buffer)
                    let seconds = try buffer.readDouble(field: "seconds")
                    return StageOneEdit(id: id, outcome: .ran(run, seconds: seconds, output: try tensors.read(from: &buffer, in: "result")))
                case 2:
                    return StageOneEdit(id: id, outcome: .failed(reason: try buffer.readString(field: "reason", limit: 16 << 10)))
                case let other:
                    throw WireError(.malformed, "result: unknown outcome \(other) of edit \(id.prefix(64))")
                }
            })
        case 2:
            let seconds = try buffer.readDouble(field: "seconds")
            return .finish(FinishedImage(seconds: seconds, image: try tensors.read(from: &buffer, in: "result")))
        case 3:
            return .variant(try VariantOutcome.decode(from: &buffer, tensors: &tensors))
        case let other:
            throw WireError(.malformed, "result: unknown kind \(other)")
        }
    }
}

extension EditRun {
    func encode(into buffer: inout ByteBuffer) {
        buffer.writeField(model)
        buffer.writeField(mode.rawValue)
        buffer.writeInteger(UInt32(clamping: settings.steps))
        buffer.writeField(settings.guidance)
        buffer.writeInteger(UInt32(clamping: settings.height))
        buffer.writeInteger(UInt32(clamping: settings.width))
        buffer.writeField(settings.scheduler)
        buffer.writeField(settings.precision != nil)
        if let precision = settings.precision { buffer.writeInteger(precision.wireCode) }
        buffer.writeField(inversion != nil)
        if let inversion {
            buffer.writeField(inversion.cached)
            buffer.writeField(inversion.seconds)
        }
    }

    static func decode(from buffer: inout ByteBuffer) throws -> EditRun {
        let model = try buffer.readString(field: "model", limit: EditEnvelope.maximumKeyLength)
        let modeName = try buffer.readString(field: "mode", limit: 64)
        guard let mode = EditMode(rawValue: modeName) else { throw WireError(.malformed, "result: unknown mode '\(modeName)'") }
        let steps = Int(try buffer.readInteger(field: "steps", as: UInt32.self))
        let guidance = try buffer.readDouble(field: "guidance")
        let height = Int(try buffer.readInteger(field: "height", as: UInt32.self))
        let width = Int(try buffer.readInteger(field: "width", as: UInt32.self))
        let scheduler = try buffer.readOptionalString(field: "scheduler", limit: 4096)
        let precision = try buffer.readBool(field: "precision") ? try Precision(wireCode: try buffer.readInteger(field: "precision", as: UInt8.self)) : nil
        let inversion = try buffer.readBool(field: "inversion")
            ? EditRun.Inversion(cached: try buffer.readBool(field: "inversion cached"), seconds: try buffer.readDouble(field: "inversion seconds")) : nil
        return EditRun(model: model, mode: mode, settings: .init(steps: steps, guidance: guidance, height: height, width: width,
                                                                 scheduler: scheduler, precision: precision), inversion: inversion)
    }
}
