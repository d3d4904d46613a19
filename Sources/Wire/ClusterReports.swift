import Foundation

/// What a worker can run, sent in its hello.
public struct NodeCapabilities: Codable, Sendable, Equatable {
    /// Model keys: "default" for the embedded model, else the --model paths as given.
    public var models: [String]
    public var threads: Int
    public var host: String
    public var version: String

    public init(models: [String], threads: Int, host: String, version: String) {
        (self.models, self.threads, self.host, self.version) = (models, threads, host, version)
    }
}

/// The names a worker's capabilities and an edit's needs are matched by: a model key, and the
/// same key with "@bf16" for edits that run in bfloat16 (which not every CPU offers), so that
/// the coordinator sends each edit to a worker able to run it at its precision.
public enum CapabilityKey {
    public static func key(model: String, precision: String) -> String {
        precision == "fp32" ? model : model + "@" + precision
    }
}

/// One node's line of `ptp status`.
public struct NodeStatus: Codable, Sendable, Equatable {
    public var id: String
    public var host: String
    /// idle, busy, draining or gone.
    public var state: String
    public var task: String?
    public var stepsPerSecond: Double
    public var imagesPerMinute: Double
    public var done: Int
    public var failed: Int
    /// Seconds since the last heartbeat or message.
    public var lastHeard: Double
    public var models: [String]

    public init(id: String, host: String, state: String, task: String?, stepsPerSecond: Double, imagesPerMinute: Double,
                done: Int, failed: Int, lastHeard: Double, models: [String]) {
        (self.id, self.host, self.state, self.task, self.stepsPerSecond, self.imagesPerMinute) = (id, host, state, task, stepsPerSecond, imagesPerMinute)
        (self.done, self.failed, self.lastHeard, self.models) = (done, failed, lastHeard, models)
    }
}

/// One job's progress.
public struct JobStatus: Codable, Sendable, Equatable {
    public var id: String
    public var output: String
    public var edits: Int
    public var finished: Int
    public var failed: Int
    public var running: Int
    /// running, completed (every edit succeeded) or completed-with-failures.
    public var state: String

    public init(id: String, output: String, edits: Int, finished: Int, failed: Int, running: Int, state: String) {
        (self.id, self.output, self.edits, self.finished, self.failed, self.running, self.state) = (id, output, edits, finished, failed, running, state)
    }
}

/// `ptp status`'s view of the cluster.
public struct ClusterStatus: Codable, Sendable, Equatable {
    public var nodes: [NodeStatus]
    public var jobs: [JobStatus]
    public var queuedTasks: Int
    public var leasedTasks: Int

    public init(nodes: [NodeStatus], jobs: [JobStatus], queuedTasks: Int, leasedTasks: Int) {
        (self.nodes, self.jobs, self.queuedTasks, self.leasedTasks) = (nodes, jobs, queuedTasks, leasedTasks)
    }
}

/// A job's progress as its submitter sees it, with the edits that failed.
public struct JobProgressReport: Codable, Sendable, Equatable {
    public var job: JobStatus
    public var failures: [String: String]

    public init(job: JobStatus, failures: [String: String]) {
        self.job = job
        self.failures = failures
    }
}

/// What a task does; its raw value is its name on the wire and in the journal.
public enum TaskKind: String, Sendable, CaseIterable {
    /// Stage 1 of one or more edits (payload `StageOnePayload`); tensors back: one per edit,
    /// named by its id.
    case stageOne = "stage1"
    /// One image of one edit to its final picture, decode or super-resolution (payload
    /// `FinishPayload`); tensor in: "input" [1, C, h, w]; tensor back: "image" [h, w, 3] bytes.
    case finish
    /// Does nothing (dispatch benchmarks).
    case noop
}

public struct StageOnePayload: Codable, Sendable {
    /// Each edit's spec as a JSON object text.
    public var edits: [String]
    public init(edits: [String]) { self.edits = edits }
}

public struct StageOneResult: Codable, Sendable {
    public struct Edit: Codable, Sendable {
        public var id: String
        public var model: String
        public var mode: String
        public var seconds: Double
        public var steps: Int
        public var guidance: Double
        public var height: Int
        public var width: Int
        /// The scheduler that ran (class and overrides, e.g. "DPMSolverMultistepScheduler,use_karras_sigmas=true").
        public var scheduler: String?
        /// fp32 or bf16.
        public var precision: String?
        public init(id: String, model: String, mode: String, seconds: Double, steps: Int, guidance: Double, height: Int, width: Int,
                    scheduler: String? = nil, precision: String? = nil) {
            (self.id, self.model, self.mode, self.seconds, self.steps, self.guidance, self.height, self.width) = (id, model, mode, seconds, steps, guidance, height, width)
            (self.scheduler, self.precision) = (scheduler, precision)
        }
    }
    public var edits: [Edit]
    /// Edits that could not run (invalid for this model), with the reason.
    public var failures: [String: String]
    public init(edits: [Edit], failures: [String: String] = [:]) {
        self.edits = edits
        self.failures = failures
    }
}

public struct FinishPayload: Codable, Sendable {
    public var spec: String
    public var index: Int
    public init(spec: String, index: Int) { (self.spec, self.index) = (spec, index) }
}

public struct FinishResult: Codable, Sendable {
    public var seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
}

extension JSONEncoder {
    /// Compact, key-sorted JSON (stable output for files and tests).
    public static let wire: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}

extension Encodable {
    /// This value as compact JSON text.
    public func jsonText() throws -> String { String(decoding: try JSONEncoder.wire.encode(self), as: UTF8.self) }
}

extension Decodable {
    /// Parses JSON text, naming `what` in the error.
    public static func fromJSON(_ text: String, what: String) throws -> Self {
        do { return try JSONDecoder().decode(Self.self, from: Data(text.utf8)) } catch {
            throw WireError(.malformed, "\(what): \(error)")
        }
    }
}
