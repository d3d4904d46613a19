import EditContract
import Foundation
import Imaging
import Logging
import OrderedCollections
import Wire

/// Tuning of the scheduler.
public struct SchedulerSettings: Sendable {
    /// A task whose worker is silent this long goes back to the queue.
    public var leaseDuration: TimeInterval = 60
    /// Attempts before a task (and its edits) fail.
    public var maximumAttempts = 3
    /// Edits are packed into one stage-1 task while their prompts total at most this.
    public var packPrompts = 4
    /// Tasks needing a model (at a precision) that no connected worker serves fail after
    /// waiting this long.
    public var unservedTimeout: TimeInterval = 300

    public init() {}
}

/// What the scheduler asks of the world, collected as it decides and taken by its shell
/// (`SchedulerShell` on the coordinator's event loop; a test reads it directly).
public enum SchedulerOutput: Sendable, Equatable {
    /// A message to a worker, by session.
    case send(session: String, WireMessage)
    /// A job's progress changed: its watchers want a new report.
    case jobChanged(String)
}

/// The coordinator's core: jobs split into tasks, tasks handed to workers on their credits
/// under leases, results committed once by task id, retries within a cap, outputs written when
/// an edit's last image arrives. It knows no event loop, socket or wall clock: peers' messages
/// come in as calls, what goes out collects in `output`, and the time is `now()`. Its only
/// effects are its durable record: the journal, and the result store's files.
///
/// Not thread-safe: one caller at a time (the coordinator's one event loop).
public final class Scheduler {
    let journal: Journal
    let store: ResultStore
    let metrics: CoordinatorMetrics
    let logger: Logger
    let settings: SchedulerSettings
    let now: () -> Date

    public private(set) var jobs: [String: JobRecord] = [:]
    var jobOrder: [String] = []
    var tasks: [String: TaskRecord] = [:]
    /// Ready tasks by model key (entries may be stale: checked when taken).
    var queues: [String: ReadyTasks] = [:]
    var workers: [String: WorkerSession] = [:]
    /// Workers with credit and nothing they can run yet, longest idle first (an ordered set:
    /// membership and removal stay cheap with thousands of workers).
    var idle: OrderedSet<String> = []
    var manifestsDue: Set<String> = []
    /// Capability keys that queued tasks need and no connected worker serves, since when.
    var unservedSince: [String: Date] = [:]
    /// Edits whose images are all in but whose outputs could not be written yet, by job.
    var outputsDue: [String: Set<String>] = [:]
    var nextJobNumber: Int
    /// Per-node throughput over the last minutes, and the nodes that left (the status page).
    var throughput = ThroughputHistory()
    /// The latest finished edits, oldest first, at most `dashboardResults` (the status page's
    /// thumbnails, without a walk over every edit of every job).
    var recentResults: [EditRecord] = []
    /// When this coordinator first gave each job's work out, for the time-left estimate.
    var paces: [String: JobPace] = [:]
    /// Decisions not yet taken by the shell.
    var output: [SchedulerOutput] = []

    public init(journal: Journal, store: ResultStore, metrics: CoordinatorMetrics, logger: Logger,
                settings: SchedulerSettings = SchedulerSettings(), now: @escaping () -> Date = Date.init) throws {
        (self.journal, self.store, self.metrics, self.logger, self.settings, self.now) = (journal, store, metrics, logger, settings, now)
        nextJobNumber = try journal.nextJobNumber()
    }

    /// What was decided since the last call, in order.
    public func takeOutput() -> [SchedulerOutput] {
        defer { output.removeAll() }
        return output
    }

    /// A task by id (tests and reports).
    public func task(_ id: String) -> TaskRecord? { tasks[id] }

    // MARK: - Restart

    /// Rebuilds the state from the journal: unfinished tasks are queued again, edits whose
    /// images all arrived get their outputs written.
    public func restore() throws {
        let (savedJobs, savedTasks) = try journal.load()
        for job in savedJobs {
            jobs[job.id] = job
            jobOrder.append(job.id)
        }
        var requeued = 0
        for task in savedTasks {
            tasks[task.id] = task
            if task.state == .queued || task.state == .leased {
                task.state = .queued
                task.queuedAt = now()
                queues[task.model, default: ReadyTasks()].append(task)
                requeued += 1
            }
        }
        for job in savedJobs {
            for edit in job.edits.values where edit.state == .finishing && edit.images.count == edit.prompts {
                complete(edit, in: job)
            }
            try store.writeManifest(jobs(writingTo: job.output), to: job.output)
        }
        let finished = savedJobs.flatMap { $0.edits.values.filter { $0.state == .finished && $0.finishedAt != nil } }
        for edit in finished.sorted(by: { ($0.finishedAt ?? .distantPast, $0.id) < ($1.finishedAt ?? .distantPast, $1.id) }).suffix(Self.dashboardResults) {
            noteResult(edit)
        }
        if !savedJobs.isEmpty {
            logger.info("resumed from the journal", metadata: ["jobs": "\(savedJobs.count)", "tasks requeued": "\(requeued)"])
        }
    }

    // MARK: - Jobs

    /// Accepts a job: its edits (checked by the edit contract as they were decoded) and the
    /// folder their results go to. Returns the job's id.
    public func submit(_ specs: [EditSpec], output: String) throws -> String {
        guard !specs.isEmpty else { throw SubmissionError("the job has no edits") }
        guard output.hasPrefix("/") else { throw SubmissionError("the output folder must be an absolute path, got '\(output)'") }
        var seen = Set<String>()
        for spec in specs where !seen.insert(spec.id).inserted {
            throw SubmissionError("edit id '\(spec.id)' appears twice")
        }
        let folder = URL(fileURLWithPath: output).standardizedFileURL
        try checkOutputFolder(folder, for: specs)
        let jobID = "job-\(nextJobNumber)"
        let job = JobRecord(id: jobID, output: folder, created: now(), edits: specs.map { EditRecord(job: jobID, spec: $0) })
        let planned = plan(job)
        try journal.insert(job: job, number: nextJobNumber, tasks: planned)
        nextJobNumber += 1
        jobs[jobID] = job
        jobOrder.append(jobID)
        for task in planned { tasks[task.id] = task; enqueue(task) }
        checkUnserved()
        metrics.jobsSubmitted.increment()
        logger.info("job accepted", metadata: ["job": "\(jobID)", "edits": "\(specs.count)", "tasks": "\(planned.count)", "output": "\(output)"])
        return jobID
    }

    /// The jobs whose results go to `folder`, in submission order (they share its manifest).
    func jobs(writingTo folder: URL) -> [JobRecord] {
        jobOrder.compactMap { jobs[$0] }.filter { $0.output.standardizedFileURL.path == folder.standardizedFileURL.path }
    }

    /// A job may share a folder with earlier jobs of this coordinator (the manifest then lists
    /// them all), but not overwrite their edits' folders, nor a manifest of jobs it does not know.
    func checkOutputFolder(_ folder: URL, for specs: [EditSpec]) throws {
        do { try prepareOutputFolder(folder) } catch let error as OutputFileError {
            throw SubmissionError("output folder: \(error)")
        }
        let earlier = jobs(writingTo: folder)
        if earlier.isEmpty, FileManager.default.fileExists(atPath: folder.appendingPathComponent("manifest.jsonl").path) {
            throw SubmissionError("the output folder \(folder.path) holds a manifest.jsonl of jobs this coordinator does not know; "
                                  + "choose another folder, or move that manifest away first")
        }
        for job in earlier {
            for spec in specs where job.edits[spec.id] != nil {
                throw SubmissionError("edit id '\(spec.id)' already has results in \(folder.path) (from \(job.id)); give it another id or choose another folder")
            }
        }
    }

    /// Stage-1 tasks: consecutive edits with the same model and settings packed together while
    /// their prompts fit the limit.
    func plan(_ job: JobRecord) -> [TaskRecord] {
        var planned: [TaskRecord] = []
        var group: [EditRecord] = []
        func flush() {
            guard let first = group.first else { return }
            planned.append(TaskRecord(id: "\(job.id).s\(planned.count + 1)", job: job.id, kind: .stageOne,
                                      edits: group.map(\.id), image: -1, model: first.model))
            group.removeAll()
        }
        for id in job.editOrder {
            guard let edit = job.edits[id] else { continue }
            if let first = group.first, first.packKey != edit.packKey || group.reduce(0, { $0 + $1.prompts }) + edit.prompts > settings.packPrompts {
                flush()
            }
            group.append(edit)
        }
        flush()
        return planned
    }

    /// Queues `count` tasks that do nothing, for measuring dispatch capacity: they travel the
    /// same path as real tasks (queue, credit, lease, result, journal) without model work.
    public func submitNoopTasks(count: Int, model: String) throws -> String {
        let jobID = "bench-\(nextJobNumber)"
        nextJobNumber += 1
        let created = (0..<count).map { TaskRecord(id: "\(jobID).n\($0)", job: jobID, kind: .noop, edits: [], image: -1, model: model) }
        try journal.database.write { db in for task in created { try Journal.insert(task, db) } }
        for task in created { tasks[task.id] = task; enqueue(task) }
        return jobID
    }

    /// How many jobs are in each state (running, completed, completed-with-failures).
    public func jobCounts() -> [String: Int] {
        jobs.values.reduce(into: [:]) { counts, job in counts[jobStatus(job).state, default: 0] += 1 }
    }

    /// How the tasks of a job stand (dispatch benchmarks).
    public func tally(job: String) -> TaskTally {
        var tally = TaskTally()
        for task in tasks.values where task.id.hasPrefix(job + ".") {
            switch task.state {
            case .queued, .leased: tally.unfinished += 1
            case .done: tally.done += 1
            case .failed:
                tally.failed += 1
                if tally.firstError == nil { tally.firstError = task.lastError }
            }
        }
        return tally
    }
}
