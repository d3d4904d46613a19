import DequeModule
import OrderedCollections
import Foundation
import Logging
import NIOCore
import Wire

/// Tuning of the scheduler.
public struct SchedulerSettings: Sendable {
    /// A task whose worker is silent this long goes back to the queue.
    public var leaseDuration: TimeInterval = 60
    /// Attempts before a task (and its edits) fail.
    public var maximumAttempts = 3
    /// Edits are packed into one stage-1 task while their prompts total at most this.
    public var packPrompts = 4

    public init() {}
}

/// The coordinator's state and decisions: jobs split into tasks, tasks handed to workers on
/// their credits under leases, results committed once by task id, outputs written when an
/// edit's last image arrives. Confined to one event loop: every method runs on `loop`.
final class Scheduler {
    let loop: EventLoop
    let journal: Journal
    let store: ResultStore
    let metrics: CoordinatorMetrics
    let logger: Logger
    let settings: SchedulerSettings
    let codec: TensorCodec

    private(set) var jobs: [String: JobRecord] = [:]
    private var jobOrder: [String] = []
    private var tasks: [String: TaskRecord] = [:]
    /// Ready tasks by model key (entries may be stale: checked when taken).
    private var queues: [String: ReadyTasks] = [:]
    private var workers: [String: WorkerSession] = [:]
    /// Workers with credit and nothing they can run yet, longest idle first (an ordered set:
    /// membership and removal stay cheap with thousands of workers).
    private var idle: OrderedSet<String> = []
    private var watchers: [String: [Channel]] = [:]
    private var manifestsDue: Set<String> = []
    private var nextJobNumber: Int

    init(loop: EventLoop, journal: Journal, store: ResultStore, metrics: CoordinatorMetrics, logger: Logger,
         settings: SchedulerSettings, codec: TensorCodec) throws {
        (self.loop, self.journal, self.store, self.metrics, self.logger, self.settings, self.codec) = (loop, journal, store, metrics, logger, settings, codec)
        nextJobNumber = try journal.nextJobNumber()
    }

    // MARK: - Restart

    /// Rebuilds the state from the journal: unfinished tasks are queued again, edits whose
    /// images all arrived get their outputs written.
    func restore() throws {
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
                queues[task.model, default: ReadyTasks()].append(task)
                requeued += 1
            }
        }
        for job in savedJobs {
            for edit in job.edits.values where edit.state == .finishing && edit.images.count == edit.prompts {
                complete(edit, in: job)
            }
            try store.writeManifest(job)
        }
        if !savedJobs.isEmpty {
            logger.info("resumed from the journal", metadata: ["jobs": "\(savedJobs.count)", "tasks requeued": "\(requeued)"])
        }
    }

    // MARK: - Jobs

    /// Accepts a job: a JSON array of edit specs and the folder their results go to.
    func submit(editsJSON: String, output: String) throws -> (String, Int) {
        guard let list = try? JSONSerialization.jsonObject(with: Data(editsJSON.utf8)) as? [Any] else {
            throw SubmissionError("the edits are not a JSON array")
        }
        guard !list.isEmpty else { throw SubmissionError("the job has no edits") }
        guard output.hasPrefix("/") else { throw SubmissionError("the output folder must be an absolute path, got '\(output)'") }
        let jobID = "job-\(nextJobNumber)"
        var seen = Set<String>()
        let edits = try list.enumerated().map { index, item -> EditRecord in
            guard let object = item as? [String: Any] else { throw SubmissionError("edit \(index + 1) is not a JSON object") }
            let edit = try EditRecord.parse(object, job: jobID)
            guard seen.insert(edit.id).inserted else { throw SubmissionError("edit id '\(edit.id)' appears twice") }
            return edit
        }
        let job = JobRecord(id: jobID, output: URL(fileURLWithPath: output), created: Date(), edits: edits)
        let planned = plan(job)
        try journal.insert(job: job, number: nextJobNumber, tasks: planned)
        nextJobNumber += 1
        jobs[jobID] = job
        jobOrder.append(jobID)
        try FileManager.default.createDirectory(at: job.output, withIntermediateDirectories: true)
        for task in planned { tasks[task.id] = task; enqueue(task) }
        metrics.jobsSubmitted.increment()
        logger.info("job accepted", metadata: ["job": "\(jobID)", "edits": "\(edits.count)", "tasks": "\(planned.count)", "output": "\(output)"])
        return (jobID, edits.count)
    }

    /// Stage-1 tasks: consecutive edits with the same model and settings packed together while
    /// their prompts fit the limit.
    private func plan(_ job: JobRecord) -> [TaskRecord] {
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
    func submitNoopTasks(count: Int, model: String) throws -> String {
        let jobID = "bench-\(nextJobNumber)"
        nextJobNumber += 1
        let created = (0..<count).map { TaskRecord(id: "\(jobID).n\($0)", job: jobID, kind: .noop, edits: [], image: -1, model: model) }
        try journal.database.write { db in for task in created { try Journal.insert(task, db) } }
        for task in created { tasks[task.id] = task; enqueue(task) }
        return jobID
    }

    /// How a job's tasks stand (dispatch benchmarks).
    func tally(prefix: String) -> TaskTally {
        var tally = TaskTally()
        for task in tasks.values where task.id.hasPrefix(prefix + ".") {
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

    // MARK: - Workers

    func workerJoined(_ session: WorkerSession) {
        workers[session.sessionID] = session
        metrics.workers.record(workers.count)
        logger.info("worker joined", metadata: ["node": "\(session.nodeID)", "host": "\(session.host)", "models": "\(session.models.sorted())"])
    }

    func workerLeft(_ sessionID: String, reason: String) {
        guard let session = workers.removeValue(forKey: sessionID) else { return }
        idle.remove(sessionID)
        for id in session.tasks {
            guard let task = tasks[id], task.state == .leased, task.worker == sessionID else { continue }
            metrics.leasesLost.increment()
            retry(task, reason: "worker \(session.nodeID) left (\(reason))")
        }
        metrics.workers.record(workers.count)
        logger.info("worker left", metadata: ["node": "\(session.nodeID)", "reason": "\(reason)", "tasks returned": "\(session.tasks.count)"])
    }

    func credit(_ sessionID: String, slots: Int) {
        guard let session = workers[sessionID] else { return }
        session.lastHeard = Date()
        session.credits = slots - session.tasks.count
        offer(session)
    }

    /// Gives the worker tasks while it has credit, else parks it as idle.
    private func offer(_ session: WorkerSession) {
        while session.credits > 0, !session.draining, let task = nextTask(for: session.models) {
            assign(task, to: session)
        }
        if session.credits > 0 && !session.draining {
            idle.append(session.sessionID)
        } else {
            idle.remove(session.sessionID)
        }
    }

    private func nextTask(for models: Set<String>) -> TaskRecord? {
        for model in models {
            while let id = queues[model]?.popFirst() {
                if let task = tasks[id], task.state == .queued { return task }
            }
        }
        return nil
    }

    private func enqueue(_ task: TaskRecord) {
        task.state = .queued
        task.worker = nil
        task.leaseExpiry = nil
        // An idle worker that can run it takes it at once.
        if let index = idle.firstIndex(where: { workers[$0]?.models.contains(task.model) ?? false }), let session = workers[idle[index]] {
            idle.remove(at: index)
            assign(task, to: session)
            offer(session)
        } else {
            queues[task.model, default: ReadyTasks()].append(task)
        }
    }

    private func assign(_ task: TaskRecord, to session: WorkerSession) {
        let message: WireMessage
        do {
            message = try assignment(for: task)
        } catch {
            fail(task, reason: "cannot prepare the task: \(error)")
            return
        }
        task.state = .leased
        task.worker = session.sessionID
        task.leaseExpiry = Date().addingTimeInterval(settings.leaseDuration)
        task.attempts += 1
        task.progress = nil
        session.credits -= 1
        session.tasks.insert(task.id)
        session.channel.writeAndFlush(message, promise: nil)
        metrics.tasksAssigned.increment()
    }

    private func assignment(for task: TaskRecord) throws -> WireMessage {
        // No-op tasks (dispatch benchmarks) belong to no job.
        if task.kind == .noop { return .assign(taskID: task.id, kind: task.kind, payload: "{}", tensors: []) }
        guard let job = jobs[task.job] else { throw SubmissionError("job \(task.job) is gone") }
        switch task.kind {
        case .stageOne:
            let specs = task.edits.compactMap { job.edits[$0]?.spec }
            return .assign(taskID: task.id, kind: task.kind, payload: try StageOnePayload(edits: specs).jsonText(), tensors: [])
        case .finish:
            guard let edit = job.edits[task.edits[0]] else { throw SubmissionError("edit \(task.edits[0]) is gone") }
            let input = try store.stageOneSlice(job: job.id, edit: edit.id, index: task.image)
            return .assign(taskID: task.id, kind: task.kind, payload: try FinishPayload(spec: edit.spec, index: task.image).jsonText(), tensors: [input])
        case .noop:
            return .assign(taskID: task.id, kind: task.kind, payload: "{}", tensors: [])
        }
    }

    var queuedCount: Int { tasks.values.lazy.filter { $0.state == .queued }.count }

    // MARK: - Results

    /// A task's result: committed once (a late duplicate is ignored), then its effects.
    func result(_ sessionID: String, taskID: String, payload: String, tensors: [TensorPayload]) {
        let session = workers[sessionID]
        session?.lastHeard = Date()
        session?.tasks.remove(taskID)
        if let task = tasks[taskID], task.kind == .noop {
            if task.state == .leased || task.state == .queued {
                task.state = .done
                try? journal.update(task: task)
                session?.done += 1
            }
            if let session { offer(session) }
            return
        }
        guard let task = tasks[taskID], let job = jobs[task.job] else {
            logger.warning("result for an unknown task ignored", metadata: ["task": "\(taskID)"])
            return
        }
        guard task.state == .queued || task.state == .leased else {
            metrics.duplicateResults.increment()
            logger.info("late duplicate result ignored", metadata: ["task": "\(taskID)", "node": "\(session?.nodeID ?? "?")"])
            return
        }
        let node = session?.nodeID ?? "unknown"
        do {
            switch task.kind {
            case .stageOne: try stageOneDone(task, job: job, payload: payload, tensors: tensors, node: node)
            case .finish: try finishDone(task, job: job, payload: payload, tensors: tensors, node: node, session: session)
            case .noop:
                task.state = .done
                try journal.update(task: task)
            }
            session?.done += 1
            metrics.tasksCompleted(node: node).increment()
        } catch {
            logger.error("cannot commit a result", metadata: ["task": "\(taskID)", "error": "\(error)"])
            retry(task, reason: "result not committed: \(error)")
        }
        if let session { offer(session) }
    }

    private func stageOneDone(_ task: TaskRecord, job: JobRecord, payload: String, tensors: [TensorPayload], node: String) throws {
        let result = try StageOneResult.fromJSON(payload, what: "stage-1 result")
        // The whole result is checked before any edit changes, so a bad one (a missing or
        // misshapen tensor) leaves every edit of the task pending for its retry.
        var failed: [(EditRecord, String)] = []
        var accepted: [(EditRecord, StageOneResult.Edit, TensorPayload)] = []
        for id in task.edits {
            guard let edit = job.edits[id], edit.state == .pending else { continue }
            if let reason = result.failures[id] {
                failed.append((edit, reason))
                continue
            }
            guard let run = result.edits.first(where: { $0.id == id }), let tensor = tensors.first(where: { $0.name == id }) else {
                throw SubmissionError("stage-1 result lacks edit \(id)")
            }
            guard tensor.shape.first == edit.prompts else { throw SubmissionError("stage-1 output of \(id) has shape \(tensor.shape)") }
            accepted.append((edit, run, tensor))
        }
        for (edit, _, tensor) in accepted { try store.save(tensor, job: job.id, edit: edit.id, name: "stage1") }
        var finishTasks: [TaskRecord] = []
        for (edit, reason) in failed {
            edit.state = .failed
            edit.error = reason
        }
        for (edit, run, _) in accepted {
            edit.stageOne = .init(worker: node, model: run.model, mode: run.mode, seconds: run.seconds, steps: run.steps,
                                  guidance: run.guidance, height: run.height, width: run.width, scheduler: run.scheduler, precision: run.precision)
            edit.state = .finishing
            for index in 0..<edit.prompts {
                finishTasks.append(TaskRecord(id: "\(job.id).\(edit.id).f\(index)", job: job.id, kind: .finish, edits: [edit.id],
                                              image: index, model: edit.model))
            }
        }
        let touched = failed.map(\.0) + accepted.map(\.0)
        let taskState = task.state
        task.state = .done
        do {
            try journal.stageOneDone(task: task, edits: touched, finishTasks: finishTasks)
        } catch {
            // Not journalled: back to where the retry expects them.
            task.state = taskState
            for edit in touched {
                edit.state = .pending
                edit.error = nil
                edit.stageOne = nil
            }
            throw error
        }
        for finish in finishTasks { tasks[finish.id] = finish; enqueue(finish) }
        for (edit, _) in failed { editEnded(edit, in: job) }
    }

    private func finishDone(_ task: TaskRecord, job: JobRecord, payload: String, tensors: [TensorPayload], node: String, session: WorkerSession?) throws {
        guard let edit = job.edits[task.edits[0]], edit.state == .finishing else {
            task.state = .done
            try journal.update(task: task)
            return
        }
        let timing = try FinishResult.fromJSON(payload, what: "finish result")
        guard let image = tensors.first(where: { $0.name == "image" }) else { throw SubmissionError("finish result without an image") }
        try store.save(image, job: job.id, edit: edit.id, name: "image-\(task.image)")
        edit.images[task.image] = (node, timing.seconds)
        task.state = .done
        try journal.imageDone(task: task, edit: edit, worker: node, seconds: timing.seconds)
        session?.noteImages(1, at: Date())
        metrics.imagesCompleted(node: node).increment()
        if edit.images.count == edit.prompts { complete(edit, in: job) }
    }

    /// Every image of the edit is in: write its outputs, then record it finished.
    private func complete(_ edit: EditRecord, in job: JobRecord) {
        do {
            _ = try store.writeOutputs(job: job, edit: edit)
            edit.state = .finished
            edit.finishedAt = Date()
            try journal.update(edit: edit)
            store.removeBlobs(job: job.id, edit: edit.id)
        } catch {
            edit.state = .failed
            edit.error = "cannot write the outputs: \(error)"
            try? journal.update(edit: edit)
            logger.error("cannot write outputs", metadata: ["edit": "\(edit.id)", "error": "\(error)"])
        }
        editEnded(edit, in: job)
    }

    private func editEnded(_ edit: EditRecord, in job: JobRecord) {
        if edit.state == .failed { metrics.editsFailed.increment() } else { metrics.editsFinished.increment() }
        manifestsDue.insert(job.id)
        if job.isComplete {
            writeManifest(job.id)
            logger.info("job complete", metadata: ["job": "\(job.id)", "finished": "\(job.finishedCount)", "failed": "\(job.failedCount)"])
        }
        notifyWatchers(job)
    }

    func failed(_ sessionID: String, taskID: String, retryable: Bool, reason: String) {
        let session = workers[sessionID]
        session?.tasks.remove(taskID)
        session?.failed += 1
        guard let task = tasks[taskID], task.state == .leased || task.state == .queued else { return }
        metrics.taskFailures.increment()
        if retryable { retry(task, reason: reason) } else { fail(task, reason: reason) }
        if let session { offer(session) }
    }

    /// Back to the queue, or failed once out of attempts.
    private func retry(_ task: TaskRecord, reason: String) {
        task.lastError = reason
        if task.attempts >= settings.maximumAttempts {
            fail(task, reason: "failed \(task.attempts) times; last: \(reason)")
        } else {
            logger.info("task queued again", metadata: ["task": "\(task.id)", "attempts": "\(task.attempts)", "reason": "\(reason)"])
            enqueue(task)
            try? journal.update(task: task)
        }
    }

    private func fail(_ task: TaskRecord, reason: String) {
        task.state = .failed
        task.lastError = reason
        guard let job = jobs[task.job] else { return }
        let edits = task.edits.compactMap { job.edits[$0] }.filter { $0.state == .pending || $0.state == .finishing }
        for edit in edits {
            edit.state = .failed
            edit.error = reason
        }
        try? journal.update(task: task, edits: edits)
        logger.warning("task failed", metadata: ["task": "\(task.id)", "reason": "\(reason)"])
        for edit in edits { editEnded(edit, in: job) }
    }

    // MARK: - Liveness

    func heartbeat(_ sessionID: String, taskIDs: [String]) {
        guard let session = workers[sessionID] else { return }
        let now = Date()
        session.lastHeard = now
        for id in taskIDs where tasks[id]?.worker == sessionID { tasks[id]?.leaseExpiry = now.addingTimeInterval(settings.leaseDuration) }
    }

    func progress(_ sessionID: String, taskID: String, step: Int, total: Int) {
        guard let session = workers[sessionID] else { return }
        let now = Date()
        session.lastHeard = now
        session.noteSteps(1, at: now)
        metrics.unetSteps(node: session.nodeID).increment()
        if let task = tasks[taskID], task.worker == sessionID {
            task.leaseExpiry = now.addingTimeInterval(settings.leaseDuration)
            task.progress = (step, total)
        }
    }

    func draining(_ sessionID: String) {
        workers[sessionID]?.draining = true
        idle.remove(sessionID)
    }

    /// Expired leases go back to the queue.
    func checkLeases() {
        let now = Date()
        for task in tasks.values where task.state == .leased {
            guard let expiry = task.leaseExpiry, expiry < now else { continue }
            metrics.leasesLost.increment()
            if let worker = task.worker { workers[worker]?.tasks.remove(task.id) }
            retry(task, reason: "lease expired on \(task.worker.flatMap { workers[$0]?.nodeID } ?? "a lost worker")")
        }
    }

    /// Rewrites the manifests of jobs that changed.
    func flushManifests() {
        for id in manifestsDue { writeManifest(id) }
    }

    private func writeManifest(_ jobID: String) {
        manifestsDue.remove(jobID)
        guard let job = jobs[jobID] else { return }
        do { try store.writeManifest(job) } catch {
            logger.error("cannot write the manifest", metadata: ["job": "\(jobID)", "error": "\(error)"])
            manifestsDue.insert(jobID)
        }
    }

    // MARK: - Reports

    func jobStatus(_ job: JobRecord) -> JobStatus {
        let running = job.edits.values.filter { $0.state == .pending || $0.state == .finishing }.count
        let state = !job.isComplete ? "running" : job.failedCount == 0 ? "completed" : "completed-with-failures"
        return JobStatus(id: job.id, output: job.output.path, edits: job.edits.count, finished: job.finishedCount,
                         failed: job.failedCount, running: running, state: state)
    }

    func progressReport(_ jobID: String) -> JobProgressReport? {
        guard let job = jobs[jobID] else { return nil }
        var failures: [String: String] = [:]
        for edit in job.edits.values where edit.state == .failed { failures[edit.id] = edit.error ?? "failed" }
        return JobProgressReport(job: jobStatus(job), failures: failures)
    }

    func watch(_ jobID: String, channel: Channel) -> Bool {
        guard let job = jobs[jobID] else { return false }
        watchers[jobID, default: []].append(channel)
        let scheduler = NIOLoopBound(self, eventLoop: loop)
        channel.closeFuture.whenComplete { _ in
            scheduler.eventLoop.execute { scheduler.value.watchers[jobID]?.removeAll { $0 === channel } }
        }
        send(job, to: channel)
        return true
    }

    private func notifyWatchers(_ job: JobRecord) {
        for channel in watchers[job.id] ?? [] { send(job, to: channel) }
    }

    private func send(_ job: JobRecord, to channel: Channel) {
        guard let report = progressReport(job.id), let text = try? report.jsonText() else { return }
        channel.writeAndFlush(WireMessage.jobProgress(jobID: job.id, report: text), promise: nil)
    }

    func status() -> ClusterStatus {
        let now = Date()
        let nodes = workers.values.sorted { $0.nodeID < $1.nodeID }.map { session -> NodeStatus in
            let task = session.tasks.first.flatMap { tasks[$0] }
            let state = session.draining ? "draining" : session.tasks.isEmpty ? "idle" : "busy"
            var taskText: String?
            if let task {
                taskText = task.id + (task.progress.map { " \($0.step)/\($0.total)" } ?? "")
            }
            return NodeStatus(id: session.nodeID, host: session.host, state: state, task: taskText,
                              stepsPerSecond: session.stepsPerSecond(at: now), imagesPerMinute: session.imagesPerMinute(at: now),
                              done: session.done, failed: session.failed, lastHeard: now.timeIntervalSince(session.lastHeard),
                              models: session.models.sorted())
        }
        let leased = tasks.values.filter { $0.state == .leased }.count
        return ClusterStatus(nodes: nodes, jobs: jobOrder.suffix(20).compactMap { jobs[$0].map(jobStatus) },
                             queuedTasks: queuedCount, leasedTasks: leased)
    }
}
