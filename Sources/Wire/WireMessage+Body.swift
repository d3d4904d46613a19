import EditContract
import NIOCore

/// A message's body: its type code, then its fields (`FieldCoding`), typed values and tensors.
extension WireMessage {
    public func encode(into buffer: inout ByteBuffer, codec: TensorCodec) throws {
        buffer.writeInteger(typeCode)
        switch self {
        case .hello(let version, let role, let nodeID, let capabilities, let nonce):
            buffer.writeInteger(version)
            buffer.writeInteger(role.rawValue)
            buffer.writeField(nodeID)
            capabilities.encode(into: &buffer)
            buffer.writeField(nonce)
        case .challenge(let nonce):
            buffer.writeField(nonce)
        case .proof(let mac):
            buffer.writeField(mac)
        case .welcome(let sessionID, let proof):
            buffer.writeField(sessionID)
            buffer.writeField(proof)
        case .error(let code, let reason):
            buffer.writeInteger(code)
            buffer.writeField(reason)
        case .goodbye(let reason):
            buffer.writeField(reason)
        case .credit(let slots):
            buffer.writeInteger(slots)
        case .assign(let taskID, let work):
            buffer.writeField(taskID)
            try work.encode(into: &buffer, codec: codec)
        case .heartbeat(let taskIDs):
            buffer.writeField(taskIDs)
        case .progress(let taskID, let step, let total):
            buffer.writeField(taskID)
            buffer.writeInteger(step)
            buffer.writeInteger(total)
        case .result(let taskID, let result):
            buffer.writeField(taskID)
            try result.encode(into: &buffer, codec: codec)
        case .failed(let taskID, let retryable, let reason):
            buffer.writeField(taskID)
            buffer.writeField(retryable)
            buffer.writeField(reason)
        case .submit(let outputDirectory, let layout, let edits, let workingDirectory):
            buffer.writeField(outputDirectory)
            buffer.writeField(workingDirectory)
            buffer.writeField(layout.rawValue)
            buffer.writeInteger(UInt32(edits.count))
            for edit in edits { edit.encode(into: &buffer) }
        case .accepted(let jobID, let edits, let output):
            buffer.writeField(jobID)
            buffer.writeInteger(edits)
            buffer.writeField(output)
        case .watch(let jobID):
            buffer.writeField(jobID)
        case .jobProgress(let jobID, let report):
            buffer.writeField(jobID)
            buffer.writeField(try report.jsonText())
        case .pictureQuery(let digests), .picturesMissing(let digests):
            buffer.writeField(digests)
        case .picture(let picture):
            picture.encode(into: &buffer)
        case .pictureKept(let digest):
            buffer.writeField(digest)
        case .statusRequest:
            break
        case .statusReport(let status):
            buffer.writeField(try status.jsonText())
        }
    }

    /// The most edits one submission may hold.
    public static let maximumEditsPerSubmission = 1_000_000

    /// Parses a message body; every field bounded, trailing bytes refused. Its tensors may hold
    /// `tensorBytes` decompressed bytes in all: 0 refuses any tensor before it is read.
    public static func decode(_ body: inout ByteBuffer, codec: TensorCodec, tensorBytes: Int) throws -> WireMessage {
        let type = try body.readInteger(field: "message type", as: UInt8.self)
        var tensors = TensorReader(codec: codec, budget: tensorBytes)
        let message: WireMessage
        switch type {
        case 1:
            let version = try body.readInteger(field: "version", as: UInt16.self)
            guard let role = PeerRole(rawValue: try body.readInteger(field: "role", as: UInt8.self)) else {
                throw WireError(.malformed, "hello: unknown role")
            }
            guard version == WireProtocol.version else {
                // Another version's hello: what follows may be laid out differently, and is
                // not read; the version alone is answered.
                body.moveReaderIndex(to: body.writerIndex)
                return .hello(version: version, role: role, nodeID: "", capabilities: NodeCapabilities(), nonce: [])
            }
            let nodeID = try body.readString(field: "node id", limit: 256)
            let capabilities = try NodeCapabilities.decode(from: &body)
            let nonce = try body.readByteArray(field: "nonce", limit: 64)
            message = .hello(version: version, role: role, nodeID: nodeID, capabilities: capabilities, nonce: nonce)
        case 2:
            message = .challenge(nonce: try body.readByteArray(field: "nonce", limit: 64))
        case 3:
            message = .proof(mac: try body.readByteArray(field: "proof", limit: 64))
        case 4:
            message = .welcome(sessionID: try body.readString(field: "session id", limit: 256), proof: try body.readByteArray(field: "proof", limit: 64))
        case 5:
            message = .error(code: try body.readInteger(field: "error code", as: UInt16.self), reason: try body.readString(field: "reason", limit: 4096))
        case 6:
            message = .goodbye(reason: try body.readString(field: "reason", limit: 4096))
        case 10:
            message = .credit(slots: try body.readInteger(field: "slots", as: UInt32.self))
        case 11:
            let taskID = try body.readString(field: "task id", limit: 256)
            message = .assign(taskID: taskID, work: try TaskWork.decode(from: &body, tensors: &tensors))
        case 12:
            message = .heartbeat(taskIDs: try body.readStrings(field: "task ids", limit: 4096))
        case 13:
            message = .progress(taskID: try body.readString(field: "task id", limit: 256), step: try body.readInteger(field: "step", as: UInt32.self),
                                total: try body.readInteger(field: "total", as: UInt32.self))
        case 14:
            let taskID = try body.readString(field: "task id", limit: 256)
            message = .result(taskID: taskID, result: try TaskResult.decode(from: &body, tensors: &tensors))
        case 15:
            message = .failed(taskID: try body.readString(field: "task id", limit: 256), retryable: try body.readBool(field: "retryable"),
                              reason: try body.readString(field: "reason", limit: 16 << 10))
        case 20:
            let output = try body.readString(field: "output directory", limit: 4096)
            let workingDirectory = try body.readString(field: "working directory", limit: 4096)
            let layoutName = try body.readString(field: "layout", limit: 64)
            guard let layout = OutputLayout(rawValue: layoutName) else { throw WireError(.malformed, "submit: unknown layout '\(layoutName.prefix(64))'") }
            let count = try body.readCount(field: "edits", limit: maximumEditsPerSubmission, smallest: EditEnvelope.smallestEncoding)
            message = .submit(outputDirectory: output, layout: layout, edits: try (0..<count).map { _ in try EditEnvelope.decode(from: &body) },
                              workingDirectory: workingDirectory)
        case 21:
            message = .accepted(jobID: try body.readString(field: "job id", limit: 256), edits: try body.readInteger(field: "edits", as: UInt32.self),
                                output: try body.readString(field: "output", limit: 4096))
        case 22:
            message = .watch(jobID: try body.readString(field: "job id", limit: 256))
        case 23:
            let jobID = try body.readString(field: "job id", limit: 256)
            message = .jobProgress(jobID: jobID, report: try JobProgressReport.fromJSON(try body.readString(field: "report", limit: 16 << 20), what: "job progress"))
        case 24, 25:
            let digests = try body.readStrings(field: "picture digests", limit: CarriedPicture.maximumDigestsPerQuery, each: 64)
            guard digests.allSatisfy(PictureDigest.isWellFormed) else { throw WireError(.malformed, "picture digests: not SHA-256s in hex") }
            message = type == 24 ? .pictureQuery(digests: digests) : .picturesMissing(digests: digests)
        case 26:
            message = .picture(try CarriedPicture.decode(from: &body))
        case 27:
            message = .pictureKept(digest: try body.readString(field: "picture digest", limit: 64))
        case 30:
            message = .statusRequest
        case 31:
            message = .statusReport(try ClusterStatus.fromJSON(try body.readString(field: "report", limit: 64 << 20), what: "status report"))
        default:
            throw WireError(.unknownMessage, "unknown message type \(type)")
        }
        guard body.readableBytes == 0 else { throw WireError(.malformed, "\(message.name): \(body.readableBytes) unexpected trailing bytes") }
        return message
    }
}

/// Reads a message's tensors against one decompressed budget; with none, refuses any tensor
/// before reading it (a peer that has not authenticated sends none).
struct TensorReader {
    let codec: TensorCodec
    var budget: Int
    let allowed: Bool

    init(codec: TensorCodec, budget: Int) {
        (self.codec, self.budget, allowed) = (codec, budget, budget > 0)
    }

    mutating func read(from buffer: inout ByteBuffer, in message: String) throws -> TensorPayload {
        guard allowed else { throw WireError(.unexpectedMessage, "\(message) carries tensors before the handshake finished") }
        return try codec.decode(from: &buffer, budget: &budget)
    }
}
