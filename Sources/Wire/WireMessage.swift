import EditContract

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

/// Every message of the protocol, each with typed fields: edits travel as envelopes, work and
/// results as typed values with their tensors inside (`TensorCodec`). Only the reports a client
/// shows (job progress, cluster status) are JSON inside their frames: they change as the
/// reports grow, and the coordinator only ever writes them.
public enum WireMessage: Sendable, Equatable {
    // Handshake
    /// The peer's nonce is last, so that a hello of another version still decodes far enough
    /// to be refused for its version.
    case hello(version: UInt16, role: PeerRole, nodeID: String, capabilities: NodeCapabilities, nonce: [UInt8])
    case challenge(nonce: [UInt8])
    case proof(mac: [UInt8])
    /// Carries the coordinator's proof of the secret.
    case welcome(sessionID: String, proof: [UInt8])
    case error(code: UInt16, reason: String)
    case goodbye(reason: String)
    // Workers
    case credit(slots: UInt32)
    case assign(taskID: String, work: TaskWork)
    case heartbeat(taskIDs: [String])
    case progress(taskID: String, step: UInt32, total: UInt32)
    case result(taskID: String, result: TaskResult)
    case failed(taskID: String, retryable: Bool, reason: String)
    // Clients
    /// Which of these pictures the coordinator lacks (answered by `picturesMissing`), so that a
    /// client sends each picture once however many jobs edit it.
    case pictureQuery(digests: [String])
    case picturesMissing(digests: [String])
    /// A picture a job will name, sent before the job; answered by `pictureKept` once it is
    /// on the coordinator's disk (one at a time, so a catalogue never piles up in memory).
    case picture(CarriedPicture)
    case pictureKept(digest: String)
    /// A job: its output folder as the user gave it (a relative one is under the coordinator's
    /// output root, or else under `workingDirectory`, the client's), its layout and its lines.
    case submit(outputDirectory: String, layout: OutputLayout, edits: [EditEnvelope], workingDirectory: String = "")
    /// The job is journaled; `output` is the folder it writes to.
    case accepted(jobID: String, edits: UInt32, output: String = "")
    case watch(jobID: String)
    case jobProgress(jobID: String, report: JobProgressReport)
    case statusRequest
    case statusReport(ClusterStatus)

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
        case .pictureQuery: return 24
        case .picturesMissing: return 25
        case .picture: return 26
        case .pictureKept: return 27
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
        case .pictureQuery: return "picture query"
        case .picturesMissing: return "pictures missing"
        case .picture: return "picture"
        case .pictureKept: return "picture kept"
        case .statusRequest: return "status request"
        case .statusReport: return "status report"
        }
    }
}
