import EditContract
import Foundation
import Logging
import OrderedCollections
import Wire

/// Tuning of the broker.
public struct BrokerSettings: Sendable {
    /// A task whose worker is silent this long goes back to the queue.
    public var leaseDuration: TimeInterval = 60
    /// Attempts before a task (and its edits) fail.
    public var maximumAttempts = 3
    /// Edits are packed into one stage-1 task while their prompts total at most this.
    public var packPrompts = 4
    /// Tasks needing a model (at a precision) that no connected worker serves fail after
    /// waiting this long.
    public var unservedTimeout: TimeInterval = 300
    /// Results waiting for storage beyond which no more work goes out (each holds its tensors).
    public var maximumCommitsInFlight = 64
    /// The largest picture a client may send, and the most bytes of pictures one job may name.
    public var maximumPictureBytes = CarriedPicture.maximumBytes
    public var maximumPictureBytesPerJob = 4 << 30
    /// The most bytes of pictures one client's unfinished jobs may name in all.
    public var maximumPictureBytesPerClient = 16 << 30
    /// The largest batch line (an edit spec's JSON): no prompt a text encoder reads comes close.
    public var maximumLineBytes = 64 << 10
    /// The most edits (or sampled lines) one job may hold.
    public var maximumJobEdits = 1_000_000
    /// The most edits one client's unfinished jobs may hold, and all clients' together: what
    /// bounds the coordinator's memory under a flood of submissions.
    public var maximumClientQueuedEdits = 500_000
    public var maximumQueuedEdits = 1_000_000

    public init() {}
}

/// The coordinator's core, which only decides: jobs split into tasks, tasks leased to workers
/// on their credits, results committed once by task id, retries within a cap, outputs written
/// when an edit's last image is in. It knows no event loop, socket, disk or wall clock: peers'
/// messages and storage outcomes come in as calls with typed values, what it decides collects
/// in `output` (messages to send, storage requests, events), and the time is `now()`. A
/// result counts once its storage request reports it durable, so a coordinator killed at any
/// moment loses nothing and runs nothing finished again.
///
/// Not thread-safe: one caller at a time (the coordinator's one event loop).
public final class TaskBroker {
    let metrics: CoordinatorMetrics
    let logger: Logger
    let settings: BrokerSettings
    let now: () -> Date

    public private(set) var jobs: [String: JobRecord] = [:]
    var jobOrder: [String] = []
    /// Jobs accepted but not yet journaled: their ids and edits are taken, their tasks wait.
    var unstoredJobs: [String: (job: JobRecord, tasks: [TaskRecord])] = [:]
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
    /// What each committing task will change once durable.
    var commits: [String: PendingCommit] = [:]
    /// Complete jobs whose manifest lists every edit: only these are reported complete, so a
    /// client that sees its job end finds the manifest whole.
    var manifestsWritten: Set<String> = []
    /// Complete sampled jobs whose dataset files could not be written yet.
    var datasetsDue: Set<String> = []
    var nextJobNumber: Int
    /// Pictures kept for jobs (`STATE/pictures`), by digest, with their sizes in bytes.
    var carriedPictures: [String: Int] = [:]
    /// The node that last ran a stage-1 task of each picture (its inversion cache may hold it).
    var pictureHolders: [String: String] = [:]
    /// Decisions not yet taken by the shell.
    var output: [BrokerOutput] = []
    /// Each unfinished job's client and what it holds, for the limits.
    var ledger = ClientLedger()

    /// `nextJobNumber`: the journal's (`JobJournal.nextJobNumber`).
    public init(nextJobNumber: Int, metrics: CoordinatorMetrics, logger: Logger, settings: BrokerSettings = BrokerSettings(),
                now: @escaping () -> Date = Date.init) {
        (self.nextJobNumber, self.metrics, self.logger, self.settings, self.now) = (nextJobNumber, metrics, logger, settings, now)
    }

    /// What was decided since the last call, in order.
    public func takeOutput() -> [BrokerOutput] {
        defer { output.removeAll() }
        return output
    }

    /// A task by id (tests and reports).
    public func task(_ id: String) -> TaskRecord? { tasks[id] }

    // MARK: - Restart

    /// Rebuilds the state from the journal's contents: unfinished tasks are queued again, edits
    /// whose images all arrived get their outputs written, every manifest is written again.
    public func restore(_ contents: JournalContents) {
        for saved in contents.jobs {
            let edits = saved.edits.map { row -> EditRecord in
                let edit = EditRecord(job: saved.id, envelope: row.envelope)
                (edit.state, edit.error, edit.stageOne, edit.images, edit.finishedAt) = (row.state, row.error, row.stageOne, row.images, row.finishedAt)
                return edit
            }
            let job = JobRecord(id: saved.id, output: saved.output, created: saved.created, layout: saved.layout, edits: edits,
                                lines: restoreLines(saved.lines, job: saved.id))
            for line in job.lines.values { job.tally.add(line.tally) }
            jobs[job.id] = job
            jobOrder.append(job.id)
            nextJobNumber = max(nextJobNumber, saved.number + 1)
        }
        // Unfinished jobs count against the overall limit again (their clients are not journaled).
        for job in jobs.values where !job.isComplete {
            ledger.open(job.id, client: Self.journalClient, edits: job.itemCount, pictureBytes: 0)
        }
        var requeued = 0
        for row in contents.tasks where jobs[row.job] != nil {
            let task = TaskRecord(id: row.id, job: row.job, kind: row.kind, edits: row.edits, image: row.image, model: row.model,
                                  state: row.state, attempts: row.attempts)
            task.lastError = row.error
            tasks[task.id] = task
            if task.state != .done && task.state != .failed {
                task.state = .queued
                task.queuedAt = now()
                queues[task.model, default: ReadyTasks()].append(task)
                requeued += 1
            }
        }
        for id in jobOrder {
            guard let job = jobs[id] else { continue }
            for edit in job.edits.values where edit.state == .finishing && edit.images.count == edit.prompts {
                complete(edit, in: job)
            }
            guard job.isSampled else {
                manifestsDue.insert(id)
                continue
            }
            for lineID in job.lineOrder {
                guard let line = job.lines[lineID], line.state == .pending else { continue }
                if line.allIn { complete(line, in: job) } else { enqueue(line) }
            }
            // Its manifest is appended to as lines end; a complete job's dataset files are made
            // again (they may not have been).
            if job.isComplete {
                if job.layout == .ptp { manifestsWritten.insert(id) } else { output.append(.store(.finishDataset(job: id, folder: job.output, layout: job.layout))) }
            }
        }
        let finished = jobs.values.flatMap { $0.edits.values.filter { $0.state == .finished && $0.finishedAt != nil } }
        for edit in finished.sorted(by: { ($0.finishedAt ?? .distantPast, $0.id) < ($1.finishedAt ?? .distantPast, $1.id) }).suffix(StatusBoard.resultCount) {
            output.append(.event(.editFinished(job: edit.job, edit: edit.id, at: edit.finishedAt ?? now())))
        }
        flushManifests()
        if !contents.jobs.isEmpty {
            logger.info("resumed from the journal", metadata: ["jobs": "\(contents.jobs.count)", "tasks requeued": "\(requeued)"])
        }
    }

    /// Whose restored jobs those are, for the limits: the journal keeps no client.
    static let journalClient = "(jobs from the journal)"

    // MARK: - Jobs

    /// Takes a job: its edits or sampled lines, as envelopes (their outsides checked here), the
    /// folder their results go to and its layout. Returns the job's id; the job starts once
    /// `stored` hears it is journaled (`jobStored`), or is dropped with the reason
    /// (`jobNotStored`).
    public func submit(_ edits: [EditEnvelope], output folderPath: String, layout: OutputLayout = .ptp, client: String = "local") throws -> String {
        guard !edits.isEmpty else { throw SubmissionError("the job has no edits") }
        try checkLimits(edits, client: client)
        let sampled = edits.filter { $0.sampling != nil }.count
        guard sampled == 0 || sampled == edits.count else {
            throw SubmissionError("\(sampled) of the job's \(edits.count) lines have samples: give every line samples, or submit the single edits as a job of their own")
        }
        if layout != .ptp {
            guard sampled > 0 else { throw SubmissionError("--dataset \(layout.rawValue) writes sampled lines; give the lines samples (or --samples N)") }
            if let edit = edits.first(where: { $0.prompts.count != 2 }) {
                throw SubmissionError("--dataset \(layout.rawValue) holds pairs, but line '\(edit.id)' has \(edit.prompts.count) prompts; give each line one target")
            }
        }
        guard folderPath.hasPrefix("/") else { throw SubmissionError("the output folder must be an absolute path, got '\(folderPath)'") }
        var seen = Set<String>()
        for (index, edit) in edits.enumerated() {
            do { try edit.validate() } catch let error as EditError {
                throw SubmissionError("edits[\(index)]: \(error)")
            }
            guard seen.insert(edit.id).inserted else { throw SubmissionError("edit id '\(edit.id)' appears twice") }
        }
        let pictureBytes = try checkPictures(of: edits)
        try checkPictureLimit(pictureBytes, client: client)
        let folder = URL(fileURLWithPath: folderPath).standardizedFileURL
        let earlier = jobs(writingTo: folder, includingUnstored: true)
        if let other = earlier.first(where: { $0.isSampled != (sampled > 0) || ($0.isSampled && $0.layout != layout) }) {
            throw SubmissionError("\(folder.path) holds the results of \(other.id), \(other.isSampled ? "sampled lines in the \(other.layout.rawValue) layout" : "single edits"); "
                                  + "choose another folder for this job")
        }
        for job in earlier {
            for edit in edits where job.edits[edit.id] != nil || job.lines[edit.id] != nil {
                throw SubmissionError("edit id '\(edit.id)' already has results in \(folder.path) (from \(job.id)); give it another id or choose another folder")
            }
        }
        let number = nextJobNumber
        nextJobNumber += 1
        let jobID = "job-\(number)"
        let job: JobRecord
        if sampled > 0 {
            job = JobRecord(id: jobID, output: folder, created: now(), layout: layout, edits: [],
                            lines: edits.compactMap { envelope in envelope.sampling.map { SampledLine(job: jobID, envelope: envelope, plan: $0) } })
        } else {
            job = JobRecord(id: jobID, output: folder, created: now(), edits: edits.map { EditRecord(job: jobID, envelope: $0) })
        }
        let planned = plan(job)
        unstoredJobs[jobID] = (job, planned)
        ledger.open(jobID, client: client, edits: edits.count, pictureBytes: pictureBytes)
        ledger.named(Set(edits.flatMap(\.pictures)), by: client)
        let lines = job.lineOrder.compactMap { id in job.lines[id].map { JournalLine(job: jobID, envelope: $0.envelope, state: .pending) } }
        let row = JournalJob(id: jobID, number: number, output: folder, created: job.created, layout: layout,
                             edits: job.editOrder.compactMap { job.edits[$0]?.row }, lines: lines)
        // A manifest there is a foreign one unless a job this coordinator has journaled writes
        // there too (one still being journaled may yet be refused).
        output.append(.store(.storeJob(row, tasks: planned.map { $0.row() }, foreignManifestCheck: jobs(writingTo: folder).isEmpty)))
        return jobID
    }

    /// The job is journaled: its tasks go out.
    func jobStored(_ jobID: String) {
        guard let (job, planned) = unstoredJobs.removeValue(forKey: jobID) else { return }
        jobs[jobID] = job
        jobOrder.append(jobID)
        for task in planned { tasks[task.id] = task; enqueue(task) }
        for id in job.lineOrder { if let line = job.lines[id] { enqueue(line) } }
        if job.isSampled { offerIdle() }
        checkUnserved()
        metrics.jobsSubmitted.increment()
        logger.info("job accepted", metadata: ["job": "\(jobID)", "edits": "\(job.edits.count)", "lines": "\(job.lines.count)",
                                               "variants": "\(job.variantCount)", "tasks": "\(planned.count)", "output": "\(job.output.path)"])
    }

    /// The jobs whose results go to `folder`, in submission order (they share its manifest).
    func jobs(writingTo folder: URL, includingUnstored: Bool = false) -> [JobRecord] {
        let path = folder.standardizedFileURL.path
        let stored = jobOrder.compactMap { jobs[$0] }.filter { $0.output.standardizedFileURL.path == path }
        guard includingUnstored else { return stored }
        return stored + unstoredJobs.values.map(\.job).filter { $0.output.standardizedFileURL.path == path }
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
            if let first = group.first, first.model != edit.model || first.envelope.packKey != edit.envelope.packKey
                || group.reduce(0, { $0 + $1.prompts }) + edit.prompts > settings.packPrompts {
                flush()
            }
            group.append(edit)
        }
        flush()
        return planned
    }

    // MARK: - Storage outcomes

    /// What came of a storage request.
    public func stored(_ outcome: StorageOutcome) {
        switch outcome {
        case .jobStored(let jobID):
            jobStored(jobID)
        case .jobNotStored(let jobID, let reason):
            unstoredJobs[jobID] = nil
            ledger.close(jobID)
            logger.warning("job not stored", metadata: ["job": "\(jobID)", "reason": "\(reason)"])
        case .committed(let taskID):
            committed(taskID)
        case .notCommitted(let taskID, let reason, let transient):
            notCommitted(taskID, reason: reason, transient: transient)
        case .outputsWritten(let jobID, let editID):
            outputsWritten(job: jobID, edit: editID)
        case .outputsNotWritten(let jobID, let editID, let reason, let transient):
            outputsNotWritten(job: jobID, edit: editID, reason: reason, transient: transient)
        case .manifestWritten(let jobIDs):
            for id in jobIDs where jobs[id]?.isComplete == true && manifestsWritten.insert(id).inserted {
                output.append(.jobChanged(id))
            }
        case .manifestNotWritten(let jobIDs, let reason):
            logger.error("cannot write a manifest; trying again", metadata: ["jobs": "\(jobIDs)", "error": "\(reason)"])
            manifestsDue.formUnion(jobIDs)
        case .lineWritten(let jobID, let lineID):
            lineWritten(job: jobID, line: lineID)
        case .lineNotWritten(let jobID, let lineID, let reason, let transient):
            lineNotWritten(job: jobID, line: lineID, reason: reason, transient: transient)
        case .datasetWritten(let jobID):
            if jobs[jobID]?.isComplete == true && manifestsWritten.insert(jobID).inserted { output.append(.jobChanged(jobID)) }
        case .datasetNotWritten(let jobID, let reason):
            logger.error("cannot write a job's dataset files; trying again", metadata: ["job": "\(jobID)", "error": "\(reason)"])
            datasetsDue.insert(jobID)
        case .pictureKept(let digest, let bytes):
            carriedPictures[digest] = bytes
        case .pictureNotKept(let digest, let reason):
            logger.warning("picture not kept", metadata: ["picture": "\(digest.prefix(12))", "reason": "\(reason)"])
        case .inputRead(let session, let taskID, let work):
            inputRead(session: session, taskID: taskID, work: work)
        case .inputNotRead(let session, let taskID, let reason):
            if let task = tasks[taskID], task.state == .leased, task.worker == session {
                retry(task, reason: "cannot read its input: \(reason)")
            }
            // The worker never saw the task: its slot is free again.
            if let worker = workers[session], worker.tasks.remove(taskID) != nil {
                worker.credits += 1
                offer(worker)
            }
        }
    }

    /// A finish task's input (or a stage-1 task's picture) is read: its work goes out, its lease starting now, if the task is
    /// still this worker's; otherwise (a late result from elsewhere committed it) the worker's
    /// slot is free again. Either way the credit its assignment took is accounted for once.
    func inputRead(session sessionID: String, taskID: String, work: TaskWork) {
        guard let session = workers[sessionID] else { return }
        if let task = tasks[taskID], task.state == .leased, task.worker == sessionID {
            task.leaseExpiry = now().addingTimeInterval(settings.leaseDuration)
            output.append(.assign(session: sessionID, taskID: taskID, work: work))
        } else if session.tasks.remove(taskID) != nil {
            session.credits += 1
            offer(session)
        }
    }
}
