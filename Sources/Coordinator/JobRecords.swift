import EditContract
import Foundation
import Wire

/// A batch of edits, or of sampled lines, with an output folder.
public final class JobRecord {
    public let id: String
    public let output: URL
    public let created: Date
    public let layout: OutputLayout
    /// Edit ids in submission order (the manifest's order).
    public let editOrder: [String]
    public internal(set) var edits: [String: EditRecord]
    /// Sampled line ids in submission order (a job holds edits or sampled lines, not both).
    public let lineOrder: [String]
    public internal(set) var lines: [String: SampledLine]
    /// Every line's tally, kept as they change (status reports read it often).
    public internal(set) var tally = VariantTally()

    init(id: String, output: URL, created: Date, layout: OutputLayout = .ptp, edits: [EditRecord], lines: [SampledLine] = []) {
        (self.id, self.output, self.created, self.layout) = (id, output, created, layout)
        editOrder = edits.map(\.id)
        self.edits = Dictionary(uniqueKeysWithValues: edits.map { ($0.id, $0) })
        lineOrder = lines.map(\.id)
        self.lines = Dictionary(uniqueKeysWithValues: lines.map { ($0.id, $0) })
    }

    /// Whether it is made of sampled lines.
    public var isSampled: Bool { !lines.isEmpty }
    /// Its edits, or lines, in each state.
    public var finishedCount: Int { edits.values.filter { $0.state == .finished }.count + lines.values.filter { $0.state == .finished }.count }
    public var failedCount: Int { edits.values.filter { $0.state == .failed }.count + lines.values.filter { $0.state == .failed }.count }
    public var itemCount: Int { edits.count + lines.count }
    public var isComplete: Bool {
        edits.values.allSatisfy { $0.state == .finished || $0.state == .failed } && lines.values.allSatisfy { $0.state == .finished || $0.state == .failed }
    }
    /// Variants the job's lines make.
    public var variantCount: Int { lines.values.reduce(0) { $0 + $1.plan.samples } }
}

/// One edit of a job and how far it has come.
public final class EditRecord {
    public enum State: String, Sendable { case pending, finishing, finished, failed }

    public let job: String
    public let envelope: EditEnvelope
    public var id: String { envelope.id }
    /// Images it makes: the source and each target.
    public var prompts: Int { envelope.prompts.count }
    /// The capability workers must have.
    public var model: String { envelope.capabilityKey }
    public internal(set) var state: State = .pending
    public internal(set) var error: String?
    /// How its stage 1 ran, once it has.
    public internal(set) var stageOne: StageOneRecord?
    /// Image index -> the worker and seconds that finished it.
    var images: [Int: ImageRecord] = [:]
    public internal(set) var finishedAt: Date?
    /// While its outputs are being written: the time it finishes at once they are.
    var writing: Date?

    init(job: String, envelope: EditEnvelope) {
        self.job = job
        self.envelope = envelope
    }

    /// How many of its images have arrived.
    public var imagesDone: Int { images.count }

    /// What the journal keeps of it.
    var row: JournalEdit {
        JournalEdit(job: job, envelope: envelope, state: state, error: error, stageOne: stageOne, images: images, finishedAt: finishedAt)
    }
}

/// How an edit's stage 1 ran: where, in how long, with which settings.
public struct StageOneRecord: Sendable, Equatable {
    public var worker: String
    public var seconds: Double
    public var run: EditRun
}

/// Which worker finished an image, in how long.
public struct ImageRecord: Sendable, Equatable {
    public var worker: String
    public var seconds: Double
}

/// A unit of work for one worker.
public final class TaskRecord {
    public enum State: String, Sendable {
        case queued, leased, done, failed
        /// Its result arrived and is being made durable; never journaled (a restart finds it
        /// leased, and runs it again unless the commit landed).
        case committing
    }

    public let id: String
    public let job: String
    public let kind: TaskKind
    /// Stage 1: the edits it runs; finish: the one edit; variants: the line.
    public let edits: [String]
    /// Finish: which image; variants: which variant.
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

    /// What the journal keeps of it (a task committing is journaled as `state`).
    func row(as state: State? = nil) -> JournalTask {
        JournalTask(id: id, job: job, kind: kind, edits: edits, image: image, model: model, state: state ?? self.state,
                    attempts: attempts, error: lastError)
    }
}

/// A submission the coordinator refuses, with why and (where there is one) the fix.
public struct SubmissionError: Error, CustomStringConvertible {
    public let description: String
    /// The error frame's code: `overLimit` when a limit of the coordinator's was reached.
    public let code: WireError.Code
    init(_ description: String, code: WireError.Code = .rejected) { (self.description, self.code) = (description, code) }
}

/// A worker's result that does not fit its task (its task runs again).
struct ResultRefusal: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A journal or stored result this coordinator cannot read.
public struct StorageError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
