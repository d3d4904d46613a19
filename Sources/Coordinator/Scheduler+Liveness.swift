import Foundation

/// Heartbeats, progress and leases, and manifests rewritten as jobs change.
extension Scheduler {
    /// The worker is alive and still runs `taskIDs`: their leases are renewed.
    public func heartbeat(_ sessionID: String, taskIDs: [String]) {
        guard let session = workers[sessionID] else { return }
        let now = now()
        session.lastHeard = now
        for id in taskIDs where tasks[id]?.worker == sessionID { tasks[id]?.leaseExpiry = now.addingTimeInterval(settings.leaseDuration) }
    }

    /// A denoising step of a task done: renews its lease, counts toward the node's rate.
    public func progress(_ sessionID: String, taskID: String, step: Int, total: Int) {
        guard let session = workers[sessionID] else { return }
        let now = now()
        session.lastHeard = now
        session.noteSteps(1, at: now)
        metrics.unetSteps(node: session.nodeID).increment()
        if let task = tasks[taskID], task.worker == sessionID {
            task.leaseExpiry = now.addingTimeInterval(settings.leaseDuration)
            task.progress = (step, total)
        }
    }

    /// The worker takes no more work (it finishes what it has).
    public func draining(_ sessionID: String) {
        workers[sessionID]?.draining = true
        idle.remove(sessionID)
    }

    /// Expired leases go back to the queue (called every second by the shell).
    public func checkLeases() {
        let now = now()
        for task in tasks.values where task.state == .leased {
            guard let expiry = task.leaseExpiry, expiry < now else { continue }
            metrics.leasesLost.increment()
            if let worker = task.worker { workers[worker]?.tasks.remove(task.id) }
            retry(task, reason: "lease expired on \(task.worker.flatMap { workers[$0]?.nodeID } ?? "a lost worker")")
        }
    }

    /// Rewrites the manifests of jobs that changed.
    public func flushManifests() {
        for id in manifestsDue { writeManifest(id) }
    }

    func writeManifest(_ jobID: String) {
        manifestsDue.remove(jobID)
        guard let job = jobs[jobID] else { return }
        do { try store.writeManifest(jobs(writingTo: job.output), to: job.output) } catch {
            logger.error("cannot write the manifest", metadata: ["job": "\(jobID)", "error": "\(error)"])
            manifestsDue.insert(jobID)
        }
    }
}
