import EditContract
import Foundation
import Wire

/// A batch of edits with an output folder.
public final class JobRecord {
    public let id: String
    public let output: URL
    public let created: Date
    /// Edit ids in submission order (the manifest's order).
    public let editOrder: [String]
    public internal(set) var edits: [String: EditRecord]

    init(id: String, output: URL, created: Date, edits: [EditRecord]) {
        self.id = id
        self.output = output
        self.created = created
        editOrder = edits.map(\.id)
        self.edits = Dictionary(uniqueKeysWithValues: edits.map { ($0.id, $0) })
    }

    public var finishedCount: Int { edits.values.filter { $0.state == .finished }.count }
    public var failedCount: Int { edits.values.filter { $0.state == .failed }.count }
    public var isComplete: Bool { edits.values.allSatisfy { $0.state == .finished || $0.state == .failed } }
}

/// One edit of a job and how far it has come.
public final class EditRecord {
    public enum State: String, Sendable { case pending, finishing, finished, failed }

    public let job: String
    public let spec: EditSpec
    public var id: String { spec.id }
    /// Images it makes: the source and each target.
    public var prompts: Int { spec.prompts.count }
    /// The capability workers must have (`EditSpec.capabilityKey`).
    public var model: String { spec.capabilityKey }
    /// Edits with equal keys can share a stage-1 task: the same model, precision and sampling
    /// settings (a task's edits then take about as long as each other).
    public var packKey: String {
        let settings = [spec.steps.map(String.init), spec.height.map(String.init), spec.width.map(String.init), spec.guidance.map { "\($0)" }]
        return ([model] + settings.map { $0 ?? "-" }).joined(separator: "|")
    }
    public internal(set) var state: State = .pending
    public internal(set) var error: String?
    /// From the stage-1 result.
    var stageOne: StageOneInfo?
    /// Image index -> the worker and seconds that finished it.
    var images: [Int: (worker: String, seconds: Double)] = [:]
    public internal(set) var finishedAt: Date?

    struct StageOneInfo: Codable {
        var worker: String
        var model: String
        var mode: String
        var seconds: Double
        var steps: Int
        var guidance: Double
        var height: Int
        var width: Int
        var scheduler: String?
        var precision: String?
    }

    init(job: String, spec: EditSpec) {
        self.job = job
        self.spec = spec
    }

    /// How many of its images have arrived.
    public var imagesDone: Int { images.count }
}

/// A unit of work for one worker.
public final class TaskRecord {
    public enum State: String, Sendable { case queued, leased, done, failed }

    public let id: String
    public let job: String
    public let kind: TaskKind
    /// Stage 1: the edits it runs; finish: the one edit.
    public let edits: [String]
    /// Finish: which image.
    public let image: Int
    /// The capability key it needs.
    public let model: String
    public internal(set) var state: State
    public internal(set) var attempts: Int
    /// The session it is leased to.
    public internal(set) var worker: String?
    var leaseExpiry: Date?
    /// When it last joined the queue, and when it was last assigned (for the wait and duration
    /// histograms).
    var queuedAt: Date?
    var assignedAt: Date?
    public internal(set) var lastError: String?
    /// Stage 1: steps done of all its edits (progress).
    var progress: (step: Int, total: Int)?

    init(id: String, job: String, kind: TaskKind, edits: [String], image: Int, model: String, state: State = .queued, attempts: Int = 0) {
        (self.id, self.job, self.kind, self.edits, self.image, self.model, self.state, self.attempts) = (id, job, kind, edits, image, model, state, attempts)
    }
}

/// A refused submission, or a state the coordinator cannot go on from.
public struct SubmissionError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
