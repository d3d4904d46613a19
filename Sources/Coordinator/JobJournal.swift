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

/// A journal in memory, for tests of the coordinator's core (and nothing durable).
public final class MemoryJournal: JobJournal, @unchecked Sendable {
    private let lock = NSLock()
    private var jobs: [JournalJob] = []
    private var tasks: [JournalTask] = []
    /// Calls fail with this while set (a broken disk, in tests).
    public var failure: Error? {
        get { lock.withLock { storedFailure } }
        set { lock.withLock { storedFailure = newValue } }
    }
    private var storedFailure: Error?

    public init() {}

    public func nextJobNumber() throws -> Int {
        lock.withLock { (jobs.map(\.number).max() ?? 0) + 1 }
    }

    public func insert(_ job: JournalJob, tasks: [JournalTask]) throws {
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            jobs.append(job)
            for task in tasks where !self.tasks.contains(where: { $0.id == task.id }) { self.tasks.append(task) }
        }
    }

    public func apply(_ change: JournalChange) throws {
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            for task in change.tasks {
                if let index = tasks.firstIndex(where: { $0.id == task.id }) {
                    (tasks[index].state, tasks[index].attempts, tasks[index].error) = (task.state, task.attempts, task.error)
                } else {
                    tasks.append(task)
                }
            }
            for edit in change.edits {
                guard let job = jobs.firstIndex(where: { $0.id == edit.job }),
                      let index = jobs[job].edits.firstIndex(where: { $0.id == edit.id }) else { continue }
                // Images are only ever added (as the journal's rows are).
                let images = jobs[job].edits[index].images.merging(edit.images) { _, new in new }
                jobs[job].edits[index] = edit
                jobs[job].edits[index].images = images
            }
        }
    }

    public func load() throws -> JournalContents {
        lock.withLock { JournalContents(jobs: jobs, tasks: tasks) }
    }
}
