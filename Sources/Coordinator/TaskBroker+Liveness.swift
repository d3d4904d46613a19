import EditContract
import Foundation

/// Heartbeats, progress and leases, models no worker serves, and manifests rewritten as jobs
/// change.
extension TaskBroker {
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

    /// Notes models that queued tasks need and no connected worker serves (their jobs' watchers
    /// hear why at once), and fails those tasks once they have waited `unservedTimeout`.
    public func checkUnserved() {
        let now = now()
        let served = workers.values.reduce(into: Set<String>()) { $0.formUnion($1.models) }
        var waiting: [String: [TaskRecord]] = [:]
        for task in tasks.values where task.state == .queued && !served.contains(task.model) {
            waiting[task.model, default: []].append(task)
        }
        var waitingLines: [String: [LineReference]] = [:]
        for (model, ready) in queues where !served.contains(model) {
            let lines = ready.waitingLines.filter { jobs[$0.job]?.lines[$0.line]?.state == .pending }
            if !lines.isEmpty { waitingLines[model] = Array(lines) }
        }
        for model in unservedSince.keys where waiting[model] == nil && waitingLines[model] == nil { unservedSince[model] = nil }
        for model in waitingLines.keys where waiting[model] == nil { waiting[model] = [] }
        for (model, queued) in waiting.sorted(by: { $0.key < $1.key }) {
            guard let since = unservedSince[model] else {
                unservedSince[model] = now
                logger.warning("no connected worker serves a model that queued tasks need", metadata: ["model": "\(model)", "tasks": "\(queued.count)"])
                let affected = Set(queued.map(\.job)).union((waitingLines[model] ?? []).map(\.job))
                for job in affected.sorted() { output.append(.jobChanged(job)) }
                continue
            }
            guard now.timeIntervalSince(since) >= settings.unservedTimeout else { continue }
            unservedSince[model] = nil
            let reason = Self.unservedReason(model) + " (waited \(Int(settings.unservedTimeout)) s); start a worker serving it, then submit these edits again"
            for task in queued.sorted(by: { $0.id < $1.id }) { fail(task, reason: reason) }
            for reference in waitingLines[model] ?? [] {
                if let job = jobs[reference.job], let line = job.lines[reference.line] { fail(line, in: job, reason: reason) }
            }
        }
    }

    /// "no connected worker serves model 'X'" (at bf16, when the key says so; with scorer 'Y'
    /// for a sampled line's).
    static func unservedReason(_ key: String) -> String {
        if let (base, scorer) = CapabilityKey.scorer(of: key) { return unservedReason(base) + " with scorer '\(scorer)'" }
        let parts = key.split(separator: "@", omittingEmptySubsequences: false)
        if parts.count > 1, let precision = parts.last {
            return "no connected worker serves model '\(parts.dropLast().joined(separator: "@"))' at \(precision)"
        }
        return "no connected worker serves model '\(key)'"
    }

    /// Rewrites the manifests of jobs that changed (called every second by the shell).
    public func flushManifests() {
        for id in manifestsDue.sorted() where manifestsDue.contains(id) { writeManifest(id) }
        for id in datasetsDue.sorted() {
            datasetsDue.remove(id)
            if let job = jobs[id] { output.append(.store(.finishDataset(job: id, folder: job.output, layout: job.layout))) }
        }
    }

    /// Rewrites the manifest of the job's folder, which lists every job writing there.
    func writeManifest(_ jobID: String) {
        guard let job = jobs[jobID] else {
            manifestsDue.remove(jobID)
            return
        }
        let sharing = jobs(writingTo: job.output)
        for other in sharing { manifestsDue.remove(other.id) }
        let lines = sharing.flatMap { job in job.editOrder.compactMap { job.edits[$0].flatMap(ManifestLine.init) } }
        output.append(.store(.writeManifest(folder: job.output, lines: lines, jobs: sharing.map(\.id))))
    }
}
