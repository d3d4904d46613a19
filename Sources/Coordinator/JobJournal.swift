import EditContract
import Foundation
import Wire

/// The coordinator's durable record of jobs, their edits and tasks: what a restarted
/// coordinator rebuilds its state from, so that nothing is lost and nothing finished runs
/// again. Leases are not journaled: after a restart every unfinished task is queued again.
/// Written from the storage queue, one call at a time; each call is one transaction.
public protocol JobJournal: Sendable {
    /// One more than the largest job number recorded.
    func nextJobNumber() throws -> Int
    /// A new job with its edits and first tasks.
    func insert(_ job: JournalJob, tasks: [JournalTask]) throws
    /// Tasks written (new ones inserted, known ones given their state, attempts and error) and
    /// edits updated (their state, stage-1 record, images and finish time), all at once.
    func apply(_ change: JournalChange) throws
    /// Every job, in submission order, and every task, in the order they were made; the
    /// variants of lines still running (those of ended lines stay on disk, summed in their
    /// tallies).
    func load() throws -> JournalContents
    /// How long `folder`'s append-only manifest (of sampled lines) is, as last recorded; 0 when
    /// none was.
    func manifestLength(of folder: URL) throws -> Int
}

/// A job as the journal keeps it.
public struct JournalJob: Sendable, Equatable {
    public var id: String
    public var number: Int
    public var output: URL
    public var created: Date
    public var layout: OutputLayout = .ptp
    /// In submission order.
    public var edits: [JournalEdit]
    /// Sampled lines, in submission order.
    public var lines: [JournalLine] = []
}

/// A sampled line as the journal keeps it.
public struct JournalLine: Sendable, Equatable {
    public var job: String
    /// With its sampling plan.
    public var envelope: EditEnvelope
    public var state: EditRecord.State
    public var error: String?
    public var finishedAt: Date?
    /// Once it ended: its variants' counts.
    public var tally: VariantTally?
    /// Loaded for lines still running.
    public var variants: [VariantRecord] = []
    public var id: String { envelope.id }
}

/// A variant's result for the journal: which line it belongs to.
public struct JournalVariant: Sendable, Equatable {
    public var job: String
    public var line: String
    public var record: VariantRecord
}

/// An edit as the journal keeps it.
public struct JournalEdit: Sendable, Equatable {
    public var job: String
    public var envelope: EditEnvelope
    public var state: EditRecord.State
    public var error: String?
    public var stageOne: StageOneRecord?
    public var images: [Int: ImageRecord]
    public var finishedAt: Date?
    public var id: String { envelope.id }
}

/// A task as the journal keeps it.
public struct JournalTask: Sendable, Equatable {
    public var id: String
    public var job: String
    public var kind: TaskKind
    public var edits: [String]
    public var image: Int
    public var model: String
    public var state: TaskRecord.State
    public var attempts: Int
    public var error: String?
}

/// What one transaction writes.
public struct JournalChange: Sendable, Equatable {
    public var tasks: [JournalTask]
    public var edits: [JournalEdit]
    /// New variant results (one already journaled is left as it was: a result counts once).
    public var variants: [JournalVariant]
    /// Lines' states, errors, finish times and tallies.
    public var lines: [JournalLine]
    /// A folder's append-only manifest, and its length once this change's lines are in it.
    public var manifest: (folder: URL, length: Int)?

    public init(tasks: [JournalTask] = [], edits: [JournalEdit] = [], variants: [JournalVariant] = [], lines: [JournalLine] = [],
                manifest: (folder: URL, length: Int)? = nil) {
        (self.tasks, self.edits, self.variants, self.lines, self.manifest) = (tasks, edits, variants, lines, manifest)
    }

    public static func == (a: JournalChange, b: JournalChange) -> Bool {
        a.tasks == b.tasks && a.edits == b.edits && a.variants == b.variants && a.lines == b.lines
            && a.manifest?.folder == b.manifest?.folder && a.manifest?.length == b.manifest?.length
    }
}

/// Everything a journal holds.
public struct JournalContents: Sendable {
    public var jobs: [JournalJob]
    public var tasks: [JournalTask]
}
