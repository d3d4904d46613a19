import NIOCore

/// Who is on the other end of a connection.
public enum PeerRole: UInt8, Sendable, CustomStringConvertible {
    /// Runs tasks.
    case worker = 1
    /// Submits jobs and watches them.
    case client = 2
    /// Reads the cluster's status.
    case monitor = 3

    public var description: String {
        switch self {
        case .worker: return "worker"
        case .client: return "client"
        case .monitor: return "monitor"
        }
    }
}

/// Every message of the protocol. Bodies that change often or carry structure travel as JSON
/// text (edit specs, capabilities, status); tensors travel through `TensorCodec`.
public enum WireMessage: Sendable, Equatable {
    // Handshake
    /// The peer's nonce is last, so that a hello of an older version still decodes far enough
    /// to be refused for its version.
    case hello(version: UInt16, role: PeerRole, nodeID: String, capabilities: String, nonce: [UInt8])
    case challenge(nonce: [UInt8])
    case proof(mac: [UInt8])
    /// Carries the coordinator's proof of the secret.
    case welcome(sessionID: String, proof: [UInt8])
    case error(code: UInt16, reason: String)
    case goodbye(reason: String)
    // Workers
    case credit(slots: UInt32)
    case assign(taskID: String, kind: TaskKind, payload: String, tensors: [TensorPayload])
    case heartbeat(taskIDs: [String])
    case progress(taskID: String, step: UInt32, total: UInt32)
    case result(taskID: String, payload: String, tensors: [TensorPayload])
    case failed(taskID: String, retryable: Bool, reason: String)
    // Clients
    case submit(outputDirectory: String, edits: String)
    case accepted(jobID: String, edits: UInt32)
    case watch(jobID: String)
    case jobProgress(jobID: String, report: String)
    case statusRequest
    case statusReport(report: String)

    var typeCode: UInt8 {
        switch self {
        case .hello: return 1
        case .challenge: return 2
        case .proof: return 3
        case .welcome: return 4
        case .error: return 5
        case .goodbye: return 6
        case .credit: return 10
        case .assign: return 11
        case .heartbeat: return 12
        case .progress: return 13
        case .result: return 14
        case .failed: return 15
        case .submit: return 20
        case .accepted: return 21
        case .watch: return 22
        case .jobProgress: return 23
        case .statusRequest: return 30
        case .statusReport: return 31
        }
    }

    /// A short name for logs.
    public var name: String {
        switch self {
        case .hello: return "hello"
        case .challenge: return "challenge"
        case .proof: return "proof"
        case .welcome: return "welcome"
        case .error: return "error"
        case .goodbye: return "goodbye"
        case .credit: return "credit"
        case .assign: return "assign"
        case .heartbeat: return "heartbeat"
        case .progress: return "progress"
        case .result: return "result"
        case .failed: return "failed"
        case .submit: return "submit"
        case .accepted: return "accepted"
        case .watch: return "watch"
        case .jobProgress: return "job progress"
        case .statusRequest: return "status request"
        case .statusReport: return "status report"
        }
    }

    /// The message body: type code then fields.
    public func encode(into buffer: inout ByteBuffer, codec: TensorCodec) throws {
        buffer.writeInteger(typeCode)
        switch self {
        case .hello(let version, let role, let nodeID, let capabilities, let nonce):
            buffer.writeInteger(version)
            buffer.writeInteger(role.rawValue)
            buffer.writeField(nodeID)
            buffer.writeField(capabilities)
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
        case .assign(let taskID, let kind, let payload, let tensors):
            buffer.writeField(taskID)
            buffer.writeField(kind.rawValue)
            buffer.writeField(payload)
            buffer.writeInteger(UInt16(tensors.count))
            for tensor in tensors { try codec.encode(tensor, into: &buffer) }
        case .heartbeat(let taskIDs):
            buffer.writeField(taskIDs)
        case .progress(let taskID, let step, let total):
            buffer.writeField(taskID)
            buffer.writeInteger(step)
            buffer.writeInteger(total)
        case .result(let taskID, let payload, let tensors):
            buffer.writeField(taskID)
            buffer.writeField(payload)
            buffer.writeInteger(UInt16(tensors.count))
            for tensor in tensors { try codec.encode(tensor, into: &buffer) }
        case .failed(let taskID, let retryable, let reason):
            buffer.writeField(taskID)
            buffer.writeInteger(UInt8(retryable ? 1 : 0))
            buffer.writeField(reason)
        case .submit(let outputDirectory, let edits):
            buffer.writeField(outputDirectory)
            buffer.writeField(edits)
        case .accepted(let jobID, let edits):
            buffer.writeField(jobID)
            buffer.writeInteger(edits)
        case .watch(let jobID):
            buffer.writeField(jobID)
        case .jobProgress(let jobID, let report):
            buffer.writeField(jobID)
            buffer.writeField(report)
        case .statusRequest:
            break
        case .statusReport(let report):
            buffer.writeField(report)
        }
    }

    /// Parses a message body; every field bounded, trailing bytes refused. Its tensors may hold
    /// `tensorBytes` decompressed bytes in all: 0 refuses any tensor before it is read.
    public static func decode(_ body: inout ByteBuffer, codec: TensorCodec, tensorBytes: Int) throws -> WireMessage {
        var budget = tensorBytes
        func tensors(of message: String) throws -> [TensorPayload] {
            let count = Int(try body.readInteger(field: "tensor count", as: UInt16.self))
            guard count == 0 || tensorBytes > 0 else {
                throw WireError(.unexpectedMessage, "\(message) carries tensors before the handshake finished")
            }
            return try (0..<count).map { _ in try codec.decode(from: &body, budget: &budget) }
        }
        let type = try body.readInteger(field: "message type", as: UInt8.self)
        let message: WireMessage
        switch type {
        case 1:
            let version = try body.readInteger(field: "version", as: UInt16.self)
            guard let role = PeerRole(rawValue: try body.readInteger(field: "role", as: UInt8.self)) else {
                throw WireError(.malformed, "hello: unknown role")
            }
            let nodeID = try body.readString(field: "node id", limit: 256)
            let capabilities = try body.readString(field: "capabilities", limit: 64 << 10)
            // Version 1 had no nonce: decode it as empty, so the version check can answer.
            let nonce = body.readableBytes == 0 ? [] : try body.readByteArray(field: "nonce", limit: 64)
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
            let kindName = try body.readString(field: "kind", limit: 64)
            guard let kind = TaskKind(rawValue: kindName) else { throw WireError(.malformed, "assign: unknown task kind '\(kindName)'") }
            let payload = try body.readString(field: "payload", limit: 16 << 20)
            message = .assign(taskID: taskID, kind: kind, payload: payload, tensors: try tensors(of: "assign"))
        case 12:
            message = .heartbeat(taskIDs: try body.readStrings(field: "task ids", limit: 4096))
        case 13:
            message = .progress(taskID: try body.readString(field: "task id", limit: 256), step: try body.readInteger(field: "step", as: UInt32.self),
                                total: try body.readInteger(field: "total", as: UInt32.self))
        case 14:
            let taskID = try body.readString(field: "task id", limit: 256)
            let payload = try body.readString(field: "payload", limit: 16 << 20)
            message = .result(taskID: taskID, payload: payload, tensors: try tensors(of: "result"))
        case 15:
            message = .failed(taskID: try body.readString(field: "task id", limit: 256),
                              retryable: try body.readInteger(field: "retryable", as: UInt8.self) != 0,
                              reason: try body.readString(field: "reason", limit: 16 << 10))
        case 20:
            message = .submit(outputDirectory: try body.readString(field: "output directory", limit: 4096),
                              edits: try body.readString(field: "edits", limit: 64 << 20))
        case 21:
            message = .accepted(jobID: try body.readString(field: "job id", limit: 256), edits: try body.readInteger(field: "edits", as: UInt32.self))
        case 22:
            message = .watch(jobID: try body.readString(field: "job id", limit: 256))
        case 23:
            message = .jobProgress(jobID: try body.readString(field: "job id", limit: 256), report: try body.readString(field: "report", limit: 16 << 20))
        case 30:
            message = .statusRequest
        case 31:
            message = .statusReport(report: try body.readString(field: "report", limit: 64 << 20))
        default:
            throw WireError(.unknownMessage, "unknown message type \(type)")
        }
        guard body.readableBytes == 0 else { throw WireError(.malformed, "\(message.name): \(body.readableBytes) unexpected trailing bytes") }
        return message
    }
}
