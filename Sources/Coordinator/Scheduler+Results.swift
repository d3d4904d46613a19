import EditContract
import Foundation
import Imaging
import Wire

/// Results and failures: committed once by task id, retried within the cap, outputs written
/// when an edit's last image arrives.
extension Scheduler {
    /// A task's result: committed once (a late duplicate is ignored), then its effects.
    public func result(_ sessionID: String, taskID: String, payload: String, tensors: [TensorPayload]) {
        let session = workers[sessionID]
        session?.lastHeard = now()
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
            if let assigned = task.assignedAt { metrics.taskDuration(node: node).recordSeconds(now().timeIntervalSince(assigned)) }
        } catch {
            logger.error("cannot commit a result", metadata: ["task": "\(taskID)", "error": "\(error)"])
            // A full disk is the coordinator's trouble, not the task's: that attempt is not counted.
            if let failure = error as? OutputFileError, failure.isTransient { task.attempts = max(0, task.attempts - 1) }
            retry(task, reason: "result not committed: \(error)")
        }
        if let session { offer(session) }
    }

    func stageOneDone(_ task: TaskRecord, job: JobRecord, payload: String, tensors: [TensorPayload], node: String) throws {
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

    func finishDone(_ task: TaskRecord, job: JobRecord, payload: String, tensors: [TensorPayload], node: String, session: WorkerSession?) throws {
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
        session?.noteImages(1, at: now())
        throughput.record(node: node, images: 1, at: now())
        metrics.imagesCompleted(node: node).increment()
        if edit.images.count == edit.prompts { complete(edit, in: job) }
    }

    /// Every image of the edit is in: write its outputs, then record it finished. When the disk
    /// is full (or the journal cannot record it), the edit waits with its images in the state
    /// folder and `retryOutputs` tries again; nothing is dropped until the outputs are durable.
    func complete(_ edit: EditRecord, in job: JobRecord) {
        do {
            _ = try store.writeOutputs(job: job, edit: edit)
        } catch let error as OutputFileError where error.isTransient {
            postpone(edit, in: job, because: error)
            return
        } catch {
            edit.state = .failed
            edit.error = "cannot write the outputs: \(error)"
            try? journal.update(edit: edit)
            logger.error("cannot write outputs", metadata: ["edit": "\(edit.id)", "error": "\(error)"])
            settle(edit, in: job)
            editEnded(edit, in: job)
            return
        }
        edit.state = .finished
        edit.finishedAt = now()
        do { try journal.update(edit: edit) } catch {
            // Written but not recorded: written again on the retry, which is harmless.
            (edit.state, edit.finishedAt) = (.finishing, nil)
            postpone(edit, in: job, because: error)
            return
        }
        settle(edit, in: job)
        noteResult(edit)
        metrics.editLatency.recordSeconds(now().timeIntervalSince(job.created))
        store.removeBlobs(job: job.id, edit: edit.id)
        editEnded(edit, in: job)
    }

    private func postpone(_ edit: EditRecord, in job: JobRecord, because error: Error) {
        if outputsDue[job.id, default: []].insert(edit.id).inserted {
            logger.warning("cannot write an edit's outputs yet; its images stay in the state folder and the write is retried",
                           metadata: ["job": "\(job.id)", "edit": "\(edit.id)", "error": "\(error)"])
        }
    }

    /// The edit no longer waits to be written.
    private func settle(_ edit: EditRecord, in job: JobRecord) {
        outputsDue[job.id]?.remove(edit.id)
        if outputsDue[job.id]?.isEmpty == true { outputsDue[job.id] = nil }
    }

    /// Tries again to write the outputs that could not be written (called every second by the
    /// shell).
    public func retryOutputs() {
        for (jobID, editIDs) in outputsDue.sorted(by: { $0.key < $1.key }) {
            for id in editIDs.sorted() {
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
        guard let task = tasks[taskID], task.state == .leased || task.state == .queued else { return }
        metrics.taskFailures.increment()
        if retryable { retry(task, reason: reason) } else { fail(task, reason: reason) }
        if let session { offer(session) }
    }

    /// Back to the queue, or failed once out of attempts.
    func retry(_ task: TaskRecord, reason: String) {
        task.lastError = reason
        if task.attempts >= settings.maximumAttempts {
            fail(task, reason: "failed \(task.attempts) times; last: \(reason)")
        } else {
            logger.info("task queued again", metadata: ["task": "\(task.id)", "attempts": "\(task.attempts)", "reason": "\(reason)"])
            enqueue(task)
            try? journal.update(task: task)
        }
    }

    func fail(_ task: TaskRecord, reason: String) {
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
}
