import EditContract
import NIOCore

/// A variants task's work: variant `index` of a sampled line, run whole on one worker (its
/// stage 1, every picture finished, the pair scored), since only its scores decide whether its
/// pictures are wanted at all.
public struct VariantWork: Sendable, Equatable {
    public var line: EditEnvelope
    public var index: Int

    public init(line: EditEnvelope, index: Int) { (self.line, self.index) = (line, index) }
}

/// One variant as a worker ran it.
public struct ScoredVariant: Sendable, Equatable {
    /// Its seed and drawn values.
    public var draw: VariantDraw
    public var run: EditRun
    /// Seconds for the whole variant (sampling, finishing, scoring).
    public var seconds: Double
    /// nil when the line names no scorer.
    public var scores: PairScores?
    /// The finished pictures [height, width, 3] bytes, source first: sent only when the filter
    /// passes the pair or the line keeps rejected pictures too.
    public var pictures: [TensorPayload]

    public init(draw: VariantDraw, run: EditRun, seconds: Double, scores: PairScores?, pictures: [TensorPayload]) {
        (self.draw, self.run, self.seconds, self.scores, self.pictures) = (draw, run, seconds, scores, pictures)
    }
}

/// A variants task's result.
public enum VariantOutcome: Sendable, Equatable {
    case ran(ScoredVariant)
    /// It cannot run (its line is invalid for this model), with why: the variant fails, not
    /// the task.
    case failed(reason: String)
}

extension VariantWork {
    func encode(into buffer: inout ByteBuffer) {
        line.encode(into: &buffer)
        buffer.writeInteger(UInt32(clamping: index))
    }

    static func decode(from buffer: inout ByteBuffer) throws -> VariantWork {
        let line = try EditEnvelope.decode(from: &buffer)
        let index = Int(try buffer.readInteger(field: "variant index", as: UInt32.self))
        guard let plan = line.sampling, index < plan.samples else {
            throw WireError(.malformed, "assign: variant \(index) of a line with \(line.sampling?.samples ?? 0) samples")
        }
        return VariantWork(line: line, index: index)
    }
}

extension VariantOutcome {
    func encode(into buffer: inout ByteBuffer, codec: TensorCodec) throws {
        switch self {
        case .ran(let variant):
            buffer.writeInteger(UInt8(1))
            let draw = variant.draw
            buffer.writeInteger(UInt32(clamping: draw.index))
            buffer.writeInteger(draw.seed)
            buffer.writeField(draw.selfReplace)
            buffer.writeField(draw.crossReplace)
            buffer.writeField(draw.guidance)
            variant.run.encode(into: &buffer)
            buffer.writeField(variant.seconds)
            buffer.writeField(variant.scores != nil)
            if let scores = variant.scores {
                for value in [scores.text0, scores.text1, scores.direction, scores.image] { buffer.writeField(value) }
            }
            buffer.writeInteger(UInt32(variant.pictures.count))
            for picture in variant.pictures { try codec.encode(picture, into: &buffer) }
        case .failed(let reason):
            buffer.writeInteger(UInt8(2))
            buffer.writeField(reason)
        }
    }

    static func decode(from buffer: inout ByteBuffer, tensors: inout TensorReader) throws -> VariantOutcome {
        switch try buffer.readInteger(field: "variant outcome", as: UInt8.self) {
        case 1:
            let index = Int(try buffer.readInteger(field: "variant index", as: UInt32.self))
            let draw = VariantDraw(index: index, seed: try buffer.readInteger(field: "variant seed", as: UInt64.self),
                                   selfReplace: try buffer.readOptionalDouble(field: "self_replace"),
                                   crossReplace: try buffer.readOptionalDouble(field: "cross_replace"),
                                   guidance: try buffer.readOptionalDouble(field: "guidance"))
            let run = try EditRun.decode(from: &buffer)
            let seconds = try buffer.readDouble(field: "seconds")
            var scores: PairScores?
            if try buffer.readBool(field: "scores") {
                scores = PairScores(text0: try buffer.readDouble(field: "clip_text_0"), text1: try buffer.readDouble(field: "clip_text_1"),
                                    direction: try buffer.readDouble(field: "clip_direction"), image: try buffer.readDouble(field: "clip_image"))
            }
            let count = try buffer.readCount(field: "pictures", limit: EditSpec.maximumTargets + 1, smallest: 8)
            let pictures = try (0..<count).map { _ in try tensors.read(from: &buffer, in: "result") }
            return .ran(ScoredVariant(draw: draw, run: run, seconds: seconds, scores: scores, pictures: pictures))
        case 2:
            return .failed(reason: try buffer.readString(field: "reason", limit: 16 << 10))
        case let other:
            throw WireError(.malformed, "result: unknown variant outcome \(other)")
        }
    }
}
