import Foundation

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
    /// A job of sampled lines (its edits are its lines): how its variants stand.
    public var variants: VariantProgress?

    public init(id: String, output: String, edits: Int, finished: Int, failed: Int, running: Int, state: String, variants: VariantProgress? = nil) {
        (self.id, self.output, self.edits, self.finished, self.failed, self.running, self.state) = (id, output, edits, finished, failed, running, state)
        self.variants = variants
    }
}

/// The variants of a job's sampled lines: how many there are, are in, failed, were kept, and
/// were rejected by reason (a filter's score key, or "ranked": passed but not among the best).
public struct VariantProgress: Codable, Sendable, Equatable {
    public var total: Int
    public var done: Int
    public var failed: Int
    public var kept: Int
    public var rejected: [String: Int]

    public init(total: Int, done: Int, failed: Int, kept: Int, rejected: [String: Int]) {
        (self.total, self.done, self.failed, self.kept, self.rejected) = (total, done, failed, kept, rejected)
    }

    /// Variants rejected in all.
    public var rejectedCount: Int { rejected.values.reduce(0, +) }

    /// "412/1000 variants in, 38 kept, 350 rejected (clip_direction 200 = 49%, clip_image 90 = 22%,
    /// ranked 60 = 15%), 2 failed": each reason's share of the variants in.
    public var summary: String {
        var text = "\(done)/\(total) variants in, \(kept) kept, \(rejectedCount) rejected"
        if !rejected.isEmpty {
            let reasons = rejected.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            text += " (" + reasons.map { "\($0.key) \($0.value) = \(Int((100 * Double($0.value) / Double(max(done, 1))).rounded()))%" }
                .joined(separator: ", ") + ")"
        }
        if failed > 0 { text += ", \(failed) failed" }
        return text
    }
}

/// `ptp status`'s view of the cluster.
public struct ClusterStatus: Codable, Sendable, Equatable {
    public var nodes: [NodeStatus]
    public var jobs: [JobStatus]
    public var queuedTasks: Int
    public var leasedTasks: Int
    /// Capability keys (model, with "@bf16" for bf16) that queued tasks need and no connected
    /// worker serves, with how long they have waited in seconds.
    public var unserved: [String: Double]

    public init(nodes: [NodeStatus], jobs: [JobStatus], queuedTasks: Int, leasedTasks: Int, unserved: [String: Double] = [:]) {
        (self.nodes, self.jobs, self.queuedTasks, self.leasedTasks, self.unserved) = (nodes, jobs, queuedTasks, leasedTasks, unserved)
    }
}

/// A job's progress as its submitter sees it, with the edits that failed.
public struct JobProgressReport: Codable, Sendable, Equatable {
    public var job: JobStatus
    public var failures: [String: String]
    /// Edits that cannot start, with why (no connected worker serves their model).
    public var waiting: [String: String]

    public init(job: JobStatus, failures: [String: String], waiting: [String: String] = [:]) {
        self.job = job
        self.failures = failures
        self.waiting = waiting
    }
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
