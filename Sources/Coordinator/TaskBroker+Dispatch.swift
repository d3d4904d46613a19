import Foundation
import OrderedCollections
import Wire

/// Workers joining and leaving, and tasks handed to them on their credits.
extension TaskBroker {
    /// A worker signed in as `sessionID`, serving the capability keys `models`.
    public func workerJoined(sessionID: String, nodeID: String, host: String, models: Set<String>) {
        let session = WorkerSession(sessionID: sessionID, nodeID: nodeID, host: host, models: models, joined: now())
        workers[sessionID] = session
        output.append(.event(.workerJoined(node: nodeID, at: now())))
        metrics.nodeJoined(nodeID)
        metrics.workers.record(workers.count)
        logger.info("worker joined", metadata: ["node": "\(nodeID)", "host": "\(host)", "models": "\(models.sorted())"])
    }

    /// The worker is gone: its leased tasks go back to the queue (within their attempts).
    public func workerLeft(_ sessionID: String, reason: String) {
        guard let session = workers.removeValue(forKey: sessionID) else { return }
        idle.remove(sessionID)
        for id in session.tasks.sorted() {
            guard let task = tasks[id], task.state == .leased, task.worker == sessionID else { continue }
            metrics.leasesLost.increment()
            retry(task, reason: "worker \(session.nodeID) left (\(reason))")
        }
        metrics.workers.record(workers.count)
        output.append(.event(.workerLeft(node: session.nodeID, host: session.host, reason: reason, at: now())))
        logger.info("worker left", metadata: ["node": "\(session.nodeID)", "reason": "\(reason)", "tasks returned": "\(session.tasks.count)"])
    }

    /// The worker has `slots` free task slots (counting those it runs).
    public func credit(_ sessionID: String, slots: Int) {
        guard let session = workers[sessionID] else { return }
        session.lastHeard = now()
        session.credits = slots - session.tasks.count
        offer(session)
    }

    /// Gives the worker tasks while it has credit, else parks it as idle. No task goes out while
    /// `maximumCommitsInFlight` results wait for storage: results hold their tensors until
    /// stored, so a slow disk slows the cluster instead of filling the coordinator's memory.
    func offer(_ session: WorkerSession) {
        while session.credits > 0, !session.draining, !storageIsBehind, let task = nextPreferredTask(for: session) {
            assign(task, to: session)
        }
        if session.credits > 0 && !session.draining {
            idle.append(session.sessionID)
        } else {
            idle.remove(session.sessionID)
        }
    }

    func nextTask(for models: Set<String>) -> TaskRecord? {
        for model in models.sorted() {
            while let id = queues[model]?.popFirst() {
                if let task = tasks[id], task.state == .queued { return task }
            }
        }
        for model in models.sorted() {
            if let task = nextVariantTask(model: model) { return task }
        }
        return nil
    }

    func enqueue(_ task: TaskRecord) {
        task.state = .queued
        task.worker = nil
        task.leaseExpiry = nil
        task.queuedAt = now()
        // An idle worker that can run it takes it at once.
        if !storageIsBehind, let index = idleWorker(for: task), let session = workers[idle[index]] {
            idle.remove(at: index)
            assign(task, to: session)
            offer(session)
        } else {
            queues[task.model, default: ReadyTasks()].append(task)
        }
    }

    /// Leases the task to the worker. A stage-1 task goes out at once; a finish task once its
    /// input is read off the event loop, and its lease starts only then (`inputRead`), so a
    /// busy disk cannot expire leases of work no worker has seen.
    func assign(_ task: TaskRecord, to session: WorkerSession) {
        let decision: BrokerOutput
        switch (task.kind, jobs[task.job]) {
        case (.stageOne, let job?):
            let edits = task.edits.compactMap { job.edits[$0]?.envelope }
            let digests = carried(by: task)
            if !digests.isEmpty {
                if let digest = picture(of: task) { pictureHolders[digest] = session.nodeID }
                decision = .store(.readPictures(session: session.sessionID, taskID: task.id, edits: edits, digests: digests))
            } else {
                decision = .assign(session: session.sessionID, taskID: task.id, work: .stageOne(edits, pictures: []))
            }
        case (.finish, let job?):
            guard let edit = job.edits[task.edits[0]] else { return fail(task, reason: "edit \(task.edits[0]) is gone") }
            decision = .store(.readInput(session: session.sessionID, taskID: task.id, job: job.id, edit: edit.id, index: task.image,
                                         spec: edit.envelope.finish(index: task.image)))
        case (.variants, let job?):
            guard let line = job.lines[task.edits[0]] else { return fail(task, reason: "line \(task.edits[0]) is gone") }
            decision = .assign(session: session.sessionID, taskID: task.id, work: .variant(VariantWork(line: line.envelope, index: task.image)))
        case (_, nil):
            return fail(task, reason: "its job \(task.job) is gone")
        }
        let now = now()
        if let queued = task.queuedAt { metrics.queueWait.recordSeconds(now.timeIntervalSince(queued)) }
        task.state = .leased
        task.worker = session.sessionID
        task.assignedAt = now
        // Work that waits for its input to be read starts its lease once it goes out (`inputRead`).
        if case .store = decision { task.leaseExpiry = nil } else { task.leaseExpiry = now.addingTimeInterval(settings.leaseDuration) }
        task.attempts += 1
        task.progress = nil
        session.credits -= 1
        session.tasks.insert(task.id)
        output.append(decision)
        output.append(.event(.taskAssigned(job: task.job, at: now)))
        metrics.tasksAssigned.increment()
    }

    /// Results waiting for storage are at the limit: no more work goes out until some are stored.
    var storageIsBehind: Bool { commits.count >= settings.maximumCommitsInFlight }

    /// Offers work to every idle worker (after storage caught up).
    func offerIdle() {
        for id in Array(idle) {
            if let session = workers[id] { offer(session) }
        }
    }
}
