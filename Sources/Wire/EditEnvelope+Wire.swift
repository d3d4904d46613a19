import EditContract
import NIOCore

/// An edit envelope's fields, in order; the spec stays the client's JSON text, unread here.
extension EditEnvelope {
    /// The fewest bytes an encoded envelope takes (its fixed-size fields and empty strings).
    static let smallestEncoding = 4 + 4 + 4 + 1 + 8 + 1 + 4 + 1 + 1 + 1 + 4

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeField(id)
        buffer.writeField(prompts)
        buffer.writeField(model)
        buffer.writeInteger(precision.wireCode)
        buffer.writeInteger(seed)
        buffer.writeField(superResolution)
        buffer.writeField(packKey)
        buffer.writeField(sampling != nil)
        if let sampling { sampling.encode(into: &buffer) }
        buffer.writeField(picture)
        buffer.writeField(mask)
        buffer.writeField(spec)
    }

    static func decode(from buffer: inout ByteBuffer) throws -> EditEnvelope {
        let id = try buffer.readString(field: "edit id", limit: 1024)
        let prompts = try buffer.readStrings(field: "prompts of \(id.prefix(64))", limit: EditSpec.maximumTargets + 1, each: 1 << 20)
        let model = try buffer.readString(field: "model", limit: EditEnvelope.maximumKeyLength)
        let precision = try Precision(wireCode: try buffer.readInteger(field: "precision", as: UInt8.self))
        let seed = try buffer.readInteger(field: "seed", as: UInt64.self)
        let superResolution = try buffer.readBool(field: "super_resolution")
        let packKey = try buffer.readString(field: "pack key", limit: EditEnvelope.maximumKeyLength)
        let sampling = try buffer.readBool(field: "samples") ? try SamplingPlan.decode(from: &buffer) : nil
        let picture = try buffer.readOptionalString(field: "image_sha256", limit: 64)
        let mask = try buffer.readOptionalString(field: "mask_sha256", limit: 64)
        return EditEnvelope(id: id, prompts: prompts, model: model, precision: precision, seed: seed, superResolution: superResolution,
                            packKey: packKey, sampling: sampling, picture: picture, mask: mask, spec: try buffer.readString(field: "spec", limit: EditEnvelope.maximumSpecLength))
    }
}

extension SamplingPlan {
    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(clamping: samples))
        buffer.writeField(keep != nil)
        buffer.writeInteger(UInt32(clamping: keep ?? 0))
        buffer.writeField(filter.text)
        buffer.writeField(filter.direction)
        buffer.writeField(filter.image)
        buffer.writeField(keepRejected)
        buffer.writeField(scorer)
        buffer.writeField(instruction)
    }

    static func decode(from buffer: inout ByteBuffer) throws -> SamplingPlan {
        let samples = Int(try buffer.readInteger(field: "samples", as: UInt32.self))
        let hasKeep = try buffer.readBool(field: "keep")
        let keep = Int(try buffer.readInteger(field: "keep", as: UInt32.self))
        let filter = ScoreFilter(text: try buffer.readOptionalDouble(field: "filter.clip_text"),
                                 direction: try buffer.readOptionalDouble(field: "filter.clip_direction"),
                                 image: try buffer.readOptionalDouble(field: "filter.clip_image"))
        return SamplingPlan(samples: samples, keep: hasKeep ? keep : nil, filter: filter, keepRejected: try buffer.readBool(field: "keep_rejected"),
                            scorer: try buffer.readOptionalString(field: "scorer", limit: 4096),
                            instruction: try buffer.readOptionalString(field: "instruction", limit: 1 << 16))
    }
}

extension Precision {
    var wireCode: UInt8 {
        switch self {
        case .fp32: return 0
        case .bf16: return 1
        }
    }

    init(wireCode: UInt8) throws {
        switch wireCode {
        case 0: self = .fp32
        case 1: self = .bf16
        default: throw WireError(.malformed, "precision: unknown code \(wireCode)")
        }
    }
}
