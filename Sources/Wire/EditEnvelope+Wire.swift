import EditContract
import NIOCore

/// An edit envelope's fields, in order; the spec stays the client's JSON text, unread here.
extension EditEnvelope {
    /// The fewest bytes an encoded envelope takes (its fixed-size fields and empty strings).
    static let smallestEncoding = 4 + 4 + 4 + 1 + 8 + 1 + 4 + 4

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeField(id)
        buffer.writeField(prompts)
        buffer.writeField(model)
        buffer.writeInteger(precision.wireCode)
        buffer.writeInteger(seed)
        buffer.writeField(superResolution)
        buffer.writeField(packKey)
        buffer.writeField(spec)
    }

    static func decode(from buffer: inout ByteBuffer) throws -> EditEnvelope {
        let id = try buffer.readString(field: "edit id", limit: 1024)
        let prompts = try buffer.readStrings(field: "prompts of \(id.prefix(64))", limit: EditSpec.maximumTargets + 1, each: 1 << 20)
        let model = try buffer.readString(field: "model", limit: EditEnvelope.maximumKeyLength)
        let precision = try Precision(wireCode: try buffer.readInteger(field: "precision", as: UInt8.self))
        return EditEnvelope(id: id, prompts: prompts, model: model, precision: precision, seed: try buffer.readInteger(field: "seed", as: UInt64.self),
                            superResolution: try buffer.readBool(field: "super_resolution"),
                            packKey: try buffer.readString(field: "pack key", limit: EditEnvelope.maximumKeyLength),
                            spec: try buffer.readString(field: "spec", limit: EditEnvelope.maximumSpecLength))
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
