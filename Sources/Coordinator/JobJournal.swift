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
    /// Every job, in submission order, and every task, in the order they were made.
    func load() throws -> JournalContents
}

/// A job as the journal keeps it.
public struct JournalJob: Sendable, Equatable {
    public var id: String
    public var number: Int
    public var output: URL
    public var created: Date
    /// In submission order.
    public var edits: [JournalEdit]
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

    public init(tasks: [JournalTask] = [], edits: [JournalEdit] = []) {
        self.tasks = tasks
        self.edits = edits
    }
}

/// Everything a journal holds.
public struct JournalContents: Sendable {
    public var jobs: [JournalJob]
    public var tasks: [JournalTask]
}
