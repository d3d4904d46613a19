import Foundation
import Imaging
import Wire

/// What the broker reports: `ptp status`, a job's progress, and the queries the status board
/// builds its page from.
extension TaskBroker {
    /// A job is complete once every edit ended and its manifest lists them all.
    func jobStatus(_ job: JobRecord) -> JobStatus {
        let running = job.edits.values.filter { $0.state == .pending || $0.state == .finishing }.count
            + job.lines.values.filter { $0.state == .pending }.count
        let complete = job.isComplete && manifestsWritten.contains(job.id)
        let state = !complete ? "running" : job.failedCount == 0 ? "completed" : "completed-with-failures"
        let variants = job.isSampled ? VariantProgress(total: job.variantCount, done: job.tally.done, failed: job.tally.failed,
                                                       kept: job.tally.kept, rejected: job.tally.rejected) : nil
        return JobStatus(id: job.id, output: job.output.path, edits: job.itemCount, finished: job.finishedCount,
                         failed: job.failedCount, running: running, state: state, variants: variants)
    }

    /// A job's progress, with the reasons of its failed edits; nil for an unknown job.
    public func progressReport(_ jobID: String) -> JobProgressReport? {
        guard let job = jobs[jobID] else { return nil }
        var failures: [String: String] = [:]
        for edit in job.edits.values where edit.state == .failed { failures[edit.id] = edit.error ?? "failed" }
        for line in job.lines.values where line.state == .failed { failures[line.id] = line.error ?? "failed" }
        var waiting: [String: String] = [:]
        for line in job.lines.values where line.state == .pending {
            guard let since = unservedSince[line.capability] else { continue }
            waiting[line.id] = Self.unservedReason(line.capability) + " (waiting since \(Int(now().timeIntervalSince(since))) s; fails after \(Int(settings.unservedTimeout)) s)"
        }
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

    /// Every connected node's line, by node id.
    func nodeStatuses(now: Date) -> [NodeStatus] {
        workers.values.sorted { $0.nodeID < $1.nodeID }.map { nodeStatus($0, now: now) }
    }

    /// Tasks queued, and leased (being committed counts as leased: a worker's result is in hand).
    /// Variants not yet handed out count as queued tasks.
    var taskCounts: (queued: Int, leased: Int) {
        var counts = tasks.values.reduce(into: (0, 0)) { counts, task in
            switch task.state {
            case .queued: counts.0 += 1
            case .leased, .committing: counts.1 += 1
            case .done, .failed: break
            }
        }
        for job in jobs.values where job.isSampled && !job.isComplete {
            for line in job.lines.values where line.state == .pending { counts.0 += line.undispatched }
        }
        return counts
    }

    /// `ptp status`'s view: nodes, the latest jobs, the queue.
    public func status() -> ClusterStatus {
        let now = now()
        let counts = taskCounts
        return ClusterStatus(nodes: nodeStatuses(now: now), jobs: latestJobs(20).map(jobStatus), queuedTasks: counts.queued,
                             leasedTasks: counts.leased, unserved: unservedSince.mapValues { now.timeIntervalSince($0) })
    }

    /// How many jobs are in each state (running, completed, completed-with-failures).
    public func jobCounts() -> [String: Int] {
        jobs.values.reduce(into: [:]) { counts, job in counts[jobStatus(job).state, default: 0] += 1 }
    }

    /// The last `count` jobs submitted, oldest first.
    func latestJobs(_ count: Int) -> [JobRecord] {
        jobOrder.suffix(count).compactMap { jobs[$0] }
    }

    /// Images made of a job's total (a source and its targets per edit; a failed edit makes no
    /// more, so it counts as done for the pace and the bar).
    func imageCounts(_ job: JobRecord) -> (done: Int, total: Int) {
        if job.isSampled {
            // A variant's pictures come together: count variants, as pictures.
            let failedLines = job.lines.values.filter { $0.state == .failed }
            let skipped = failedLines.reduce(0) { $0 + $1.plan.samples - $1.tally.done }
            return ((job.tally.done + skipped) * 2, job.variantCount * 2)
        }
        return job.edits.values.reduce(into: (0, 0)) { counts, edit in
            counts.1 += edit.prompts
            counts.0 += edit.state == .finished || edit.state == .failed ? edit.prompts : edit.imagesDone
        }
    }

    /// How many of a job's edits wait for a model no connected worker serves.
    func editsWaitingForAModel(_ job: JobRecord) -> Int {
        job.edits.values.filter { $0.state == .pending && unservedSince[$0.model] != nil }.count
            + job.lines.values.filter { $0.state == .pending && unservedSince[$0.capability] != nil }.count
    }

    /// The grid file of a finished edit, for the page's links; nil for anything else. The page
    /// names results by job and edit id only, so no path from a request reaches the disk.
    public func resultGrid(job jobID: String, edit editID: String) -> URL? {
        guard let job = jobs[jobID], let edit = job.edits[editID], edit.state == .finished else { return nil }
        return job.output.appendingPathComponent(edit.id).appendingPathComponent(EditOutputs.gridName)
    }
}
