import Foundation
import Wire

/// Job and cluster status.
extension Scheduler {
    func jobStatus(_ job: JobRecord) -> JobStatus {
        let running = job.edits.values.filter { $0.state == .pending || $0.state == .finishing }.count
        let state = !job.isComplete ? "running" : job.failedCount == 0 ? "completed" : "completed-with-failures"
        return JobStatus(id: job.id, output: job.output.path, edits: job.edits.count, finished: job.finishedCount,
                         failed: job.failedCount, running: running, state: state)
    }

    /// A job's progress, with the reasons of its failed edits; nil for an unknown job.
    public func progressReport(_ jobID: String) -> JobProgressReport? {
        guard let job = jobs[jobID] else { return nil }
        var failures: [String: String] = [:]
        for edit in job.edits.values where edit.state == .failed { failures[edit.id] = edit.error ?? "failed" }
        var waiting: [String: String] = [:]
        for edit in job.edits.values where edit.state != .failed && edit.state != .finished {
            guard let since = unservedSince[edit.model] else { continue }
            waiting[edit.id] = Self.unservedReason(edit.model) + " (waiting since \(Int(now().timeIntervalSince(since))) s; fails after \(Int(settings.unservedTimeout)) s)"
        }
        return JobProgressReport(job: jobStatus(job), failures: failures, waiting: waiting)
    }

    /// One connected node's line: its state, its task with progress, its rates.
    func nodeStatus(_ session: WorkerSession, now: Date) -> NodeStatus {
        let task = session.tasks.first.flatMap { tasks[$0] }
        return NodeStatus(id: session.nodeID, host: session.host,
                          state: session.draining ? "draining" : session.tasks.isEmpty ? "idle" : "busy",
                          task: task.map { $0.id + ($0.progress.map { " \($0.step)/\($0.total)" } ?? "") },
                          stepsPerSecond: session.stepsPerSecond(at: now), imagesPerMinute: session.imagesPerMinute(at: now),
                          done: session.done, failed: session.failed, lastHeard: now.timeIntervalSince(session.lastHeard),
                          models: session.models.sorted())
    }

    /// `ptp status`'s view: nodes, the latest jobs, the queue.
    public func status() -> ClusterStatus {
        let now = now()
        let nodes = workers.values.sorted { $0.nodeID < $1.nodeID }.map { nodeStatus($0, now: now) }
        let leased = tasks.values.filter { $0.state == .leased }.count
        return ClusterStatus(nodes: nodes, jobs: jobOrder.suffix(20).compactMap { jobs[$0].map(jobStatus) },
                             queuedTasks: queuedCount, leasedTasks: leased, unserved: unservedSince.mapValues { now.timeIntervalSince($0) })
    }
}
