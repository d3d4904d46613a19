import Foundation
import OrderedCollections
import Wire

/// Workers joining and leaving, and tasks handed to them on their credits.
extension Scheduler {
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
    func offer(_ session: WorkerSession) {
        while session.credits > 0, !session.draining, let task = nextTask(for: session.models) {
            assign(task, to: session)
        }
        if session.credits > 0 && !session.draining {
            idle.append(session.sessionID)
        } else {
            idle.remove(session.sessionID)
        }
    }

    func nextTask(for models: Set<String>) -> TaskRecord? {
        for model in models {
            while let id = queues[model]?.popFirst() {
                if let task = tasks[id], task.state == .queued { return task }
            }
        }
        return nil
    }

    func enqueue(_ task: TaskRecord) {
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

    func assign(_ task: TaskRecord, to session: WorkerSession) {
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

    func assignment(for task: TaskRecord) throws -> WireMessage {
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
}
