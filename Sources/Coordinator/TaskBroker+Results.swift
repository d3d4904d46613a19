import EditContract
import Foundation
import Wire

/// What a committing task changes once its storage request reports it durable.
struct PendingCommit {
    enum Change {
        /// Edits that ran (with their records) and failed (with why), and the finish tasks of
        /// those that ran.
        case stageOne(ran: [(edit: EditRecord, record: StageOneRecord)], failed: [(edit: EditRecord, reason: String)], finishTasks: [TaskRecord])
        case image(edit: EditRecord, index: Int, record: ImageRecord)
        case variant(line: SampledLine, record: VariantRecord)
    }

    let session: String
    let node: String
    let change: Change
}

/// Results and failures: checked on arrival, committed once by task id when durable, retried
/// within the cap; outputs written when an edit's last image is in.
extension TaskBroker {
    /// A task's result. A late duplicate (the task was committed, or is being) is ignored; a
    /// result that does not fit its task sends the task back to the queue.
    public func result(_ sessionID: String, taskID: String, result: TaskResult) {
        let session = workers[sessionID]
        session?.lastHeard = now()
        session?.tasks.remove(taskID)
        defer { if let session { offer(session) } }
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
            switch (task.kind, result) {
            case (.stageOne, .stageOne(let edits)): try commitStageOne(task, of: job, edits, session: sessionID, node: node)
            case (.finish, .finish(let image)): try commitImage(task, of: job, image, session: sessionID, node: node)
            case (.variants, .variant(let outcome)): try commitVariant(task, of: job, outcome, session: sessionID, node: node)
            default: throw ResultRefusal("a \(result.kind.rawValue) result for a \(task.kind.rawValue) task")
            }
        } catch {
            logger.warning("result refused", metadata: ["task": "\(taskID)", "error": "\(error)"])
            retry(task, reason: "result refused: \(error)")
        }
    }

    /// The whole result is checked before anything is asked of storage, so a bad one (a missing
    /// or misshapen output) leaves every edit of the task pending for its retry.
    func commitStageOne(_ task: TaskRecord, of job: JobRecord, _ results: [StageOneEdit], session: String, node: String) throws {
        var ran: [(edit: EditRecord, record: StageOneRecord)] = []
        var failed: [(edit: EditRecord, reason: String)] = []
        var outputs: [String: TensorPayload] = [:]
        for id in task.edits {
            guard let edit = job.edits[id], edit.state == .pending else { continue }
            guard let result = results.first(where: { $0.id == id }) else { throw ResultRefusal("stage-1 result lacks edit \(id)") }
            switch result.outcome {
            case .failed(let reason):
                failed.append((edit, reason))
            case .ran(let run, let seconds, let output):
                guard output.shape.count == 4, output.shape[0] == edit.prompts else {
                    throw ResultRefusal("stage-1 output of \(id) has shape \(output.shape) for \(edit.prompts) prompts")
                }
                ran.append((edit, StageOneRecord(worker: node, seconds: seconds, run: run)))
                outputs[id] = output
            }
        }
        let finishTasks = ran.flatMap { edit, _ in
            (0..<edit.prompts).map { TaskRecord(id: "\(job.id).\(edit.id).f\($0)", job: job.id, kind: .finish, edits: [edit.id], image: $0, model: edit.model) }
        }
        var rows = ran.map { edit, record in with(edit.row) { $0.state = .finishing; $0.stageOne = record } }
        rows += failed.map { edit, reason in with(edit.row) { $0.state = .failed; $0.error = reason } }
        let change = JournalChange(tasks: [task.row(as: .done)] + finishTasks.map { $0.row() }, edits: rows)
        commits[task.id] = PendingCommit(session: session, node: node, change: .stageOne(ran: ran, failed: failed, finishTasks: finishTasks))
        task.state = .committing
        output.append(.store(.commitStageOne(taskID: task.id, job: job.id, outputs: outputs, change: change)))
    }

    func commitImage(_ task: TaskRecord, of job: JobRecord, _ finished: FinishedImage, session: String, node: String) throws {
        guard let edit = job.edits[task.edits[0]], edit.state == .finishing else {
            // Its edit ended meanwhile (failed elsewhere): nothing to keep.
            task.state = .done
            output.append(.store(.record(JournalChange(tasks: [task.row()]))))
            return
        }
        let image = finished.image
        guard image.elementType == .uint8, image.shape.count == 3, image.shape[2] == 3 else {
            throw ResultRefusal("image \(task.image) of \(edit.id) has shape \(image.shape)")
        }
        let record = ImageRecord(worker: node, seconds: finished.seconds)
        let row = with(edit.row) { $0.images = [task.image: record] }
        commits[task.id] = PendingCommit(session: session, node: node, change: .image(edit: edit, index: task.image, record: record))
        task.state = .committing
        output.append(.store(.commitImage(taskID: task.id, job: job.id, edit: edit.id, index: task.image, image: image,
                                          change: JournalChange(tasks: [task.row(as: .done)], edits: [row]))))
    }

    /// The result is durable: it counts.
    func committed(_ taskID: String) {
        let wasBehind = storageIsBehind
        defer { if wasBehind && !storageIsBehind { offerIdle() } }
        guard let commit = commits.removeValue(forKey: taskID), let task = tasks[taskID], let job = jobs[task.job] else { return }
        task.state = .done
        switch commit.change {
        case .stageOne(let ran, let failed, let finishTasks):
            for (edit, record) in ran {
                edit.state = .finishing
                edit.stageOne = record
            }
            for (edit, reason) in failed {
                edit.state = .failed
                edit.error = reason
            }
            for finish in finishTasks { tasks[finish.id] = finish; enqueue(finish) }
            for (edit, _) in failed { editEnded(edit, in: job) }
        case .image(let edit, let index, let record):
            edit.images[index] = record
            workers[commit.session]?.noteImages(1, at: now())
            output.append(.event(.imageFinished(node: commit.node, at: now())))
            metrics.imagesCompleted(node: commit.node).increment()
            if edit.state == .finishing && edit.images.count == edit.prompts { complete(edit, in: job) }
        case .variant(let line, let record):
            // Done variants are known by their lines: the record goes.
            tasks[taskID] = nil
            committedVariant(record, of: line, in: job, session: commit.session, node: commit.node)
            // A failure the coordinator recorded (out of attempts) is no worker's work.
            if commit.session.isEmpty { return }
        }
        workers[commit.session]?.done += 1
        metrics.tasksCompleted(node: commit.node).increment()
        if let assigned = task.assignedAt { metrics.taskDuration(node: commit.node).recordSeconds(now().timeIntervalSince(assigned)) }
    }

    /// The result could not be made durable: the task runs again. A full disk is the
    /// coordinator's trouble, not the task's: that attempt is not counted.
    func notCommitted(_ taskID: String, reason: String, transient: Bool) {
        let wasBehind = storageIsBehind
        defer { if wasBehind && !storageIsBehind { offerIdle() } }
        guard commits.removeValue(forKey: taskID) != nil, let task = tasks[taskID] else { return }
        logger.error("cannot commit a result", metadata: ["task": "\(taskID)", "error": "\(reason)"])
        if transient { task.attempts = max(0, task.attempts - 1) }
        task.state = .leased
        retry(task, reason: "result not committed: \(reason)")
    }

    /// Every image of the edit is in: its outputs are written, then it is recorded finished.
    /// When the disk is full (or the journal cannot record it), the edit waits with its images
    /// in the state folder and `retryOutputs` tries again; nothing is dropped until the outputs
    /// are durable.
    func complete(_ edit: EditRecord, in job: JobRecord) {
        guard edit.writing == nil else { return }
        let finishedAt = now()
        edit.writing = finishedAt
        let row = with(edit.row) { $0.state = .finished; $0.finishedAt = finishedAt }
        output.append(.store(.writeOutputs(job: job.id, edit: edit.id, count: edit.prompts, folder: job.output.appendingPathComponent(edit.id),
                                           change: JournalChange(edits: [row]))))
    }

    func outputsWritten(job jobID: String, edit editID: String) {
        guard let job = jobs[jobID], let edit = job.edits[editID], let finishedAt = edit.writing else { return }
        edit.writing = nil
        edit.state = .finished
        edit.finishedAt = finishedAt
        settle(edit.id, in: job)
        output.append(.event(.editFinished(job: jobID, edit: editID, at: finishedAt)))
        metrics.editLatency.recordSeconds(finishedAt.timeIntervalSince(job.created))
        editEnded(edit, in: job)
    }

    func outputsNotWritten(job jobID: String, edit editID: String, reason: String, transient: Bool) {
        guard let job = jobs[jobID], let edit = job.edits[editID], edit.writing != nil else { return }
        edit.writing = nil
        if transient {
            if outputsDue[job.id, default: []].insert(edit.id).inserted {
                logger.warning("cannot write an edit's outputs yet; its images stay in the state folder and the write is retried",
                               metadata: ["job": "\(job.id)", "edit": "\(edit.id)", "error": "\(reason)"])
            }
            return
        }
        logger.error("cannot write outputs", metadata: ["edit": "\(edit.id)", "error": "\(reason)"])
        edit.state = .failed
        edit.error = "cannot write the outputs: \(reason)"
        output.append(.store(.record(JournalChange(edits: [edit.row]))))
        settle(edit.id, in: job)
        editEnded(edit, in: job)
    }

    /// The edit (or line) no longer waits to be written.
    func settle(_ id: String, in job: JobRecord) {
        outputsDue[job.id]?.remove(id)
        if outputsDue[job.id]?.isEmpty == true { outputsDue[job.id] = nil }
    }

    /// Tries again to write the outputs that could not be written (called every second by the
    /// shell).
    public func retryOutputs() {
        for (jobID, editIDs) in outputsDue.sorted(by: { $0.key < $1.key }) {
            for id in editIDs.sorted() {
                if let job = jobs[jobID], let line = job.lines[id], line.state == .pending, line.allIn {
                    complete(line, in: job)
                    continue
                }
                guard let job = jobs[jobID], let edit = job.edits[id], edit.state == .finishing else {
                    outputsDue[jobID]?.remove(id)
                    if outputsDue[jobID]?.isEmpty == true { outputsDue[jobID] = nil }
                    continue
                }
                complete(edit, in: job)
            }
        }
    }

    func editEnded(_ edit: EditRecord, in job: JobRecord) {
        if edit.state == .failed { metrics.editsFailed.increment() } else { metrics.editsFinished.increment() }
        manifestsDue.insert(job.id)
        if job.isComplete {
            writeManifest(job.id)
            logger.info("job complete", metadata: ["job": "\(job.id)", "finished": "\(job.finishedCount)", "failed": "\(job.failedCount)"])
        }
        output.append(.jobChanged(job.id))
    }

    /// The worker could not run the task; `retryable` when another attempt could succeed.
    public func failed(_ sessionID: String, taskID: String, retryable: Bool, reason: String) {
        let session = workers[sessionID]
        session?.tasks.remove(taskID)
        session?.failed += 1
        defer { if let session { offer(session) } }
        guard let task = tasks[taskID], task.state == .leased || task.state == .queued else { return }
        metrics.taskFailures.increment()
        if retryable { retry(task, reason: reason) } else { fail(task, reason: reason) }
    }

    /// Back to the queue, or failed once out of attempts.
    func retry(_ task: TaskRecord, reason: String) {
        task.lastError = reason
        if task.attempts >= settings.maximumAttempts {
            fail(task, reason: "failed \(task.attempts) times; last: \(reason)")
        } else {
            logger.info("task queued again", metadata: ["task": "\(task.id)", "attempts": "\(task.attempts)", "reason": "\(reason)"])
            enqueue(task)
            output.append(.store(.record(JournalChange(tasks: [task.row()]))))
        }
    }

    func fail(_ task: TaskRecord, reason: String) {
        task.state = .failed
        task.lastError = reason
        guard let job = jobs[task.job] else { return }
        if task.kind == .variants {
            // The variant fails, not its line: it is in, as a failure, once journaled.
            guard let line = job.lines[task.edits[0]], line.state == .pending, !line.done.contains(task.image) else {
                tasks[task.id] = nil
                return
            }
            let record = VariantRecord(index: task.image, seed: 0, values: [:], run: nil, worker: "", seconds: 0, scores: nil, error: reason, staged: false)
            commits[task.id] = PendingCommit(session: "", node: "", change: .variant(line: line, record: record))
            task.state = .committing
            output.append(.store(.commitVariant(taskID: task.id, job: job.id, line: line.id, index: task.image, pictures: [],
                                                change: JournalChange(variants: [JournalVariant(job: job.id, line: line.id, record: record)]))))
            logger.warning("variant failed", metadata: ["task": "\(task.id)", "reason": "\(reason)"])
            return
        }
        let edits = task.edits.compactMap { job.edits[$0] }.filter { $0.state == .pending || $0.state == .finishing }
        for edit in edits {
            edit.state = .failed
            edit.error = reason
        }
        output.append(.store(.record(JournalChange(tasks: [task.row()], edits: edits.map(\.row)))))
        logger.warning("task failed", metadata: ["task": "\(task.id)", "reason": "\(reason)"])
        for edit in edits { editEnded(edit, in: job) }
    }
}

/// A copy of `value` changed by `change`.
private func with<Value>(_ value: Value, _ change: (inout Value) -> Void) -> Value {
    var copy = value
    change(&copy)
    return copy
}
