import Foundation
import Imaging
import Wire

/// The status page's model, fed by the broker's events: each node's throughput over the last
/// minutes and the nodes that left, each job's pace, the latest results. With the broker's own
/// records it makes the page's snapshot (`/status.json`).
public final class StatusBoard {
    /// Jobs, failures and results the page lists, newest first.
    static let jobCount = 20
    static let failureCount = 20
    static let resultCount = 12

    private var throughput = ThroughputHistory()
    /// When this coordinator first gave each job's work out, for the time-left estimate.
    private var paces: [String: JobPace] = [:]
    /// The latest finished edits, oldest first, at most `resultCount`.
    private var results: [(job: String, edit: String, at: Date)] = []

    /// A job's pace: when its work was first given out (by this coordinator: a restarted one
    /// starts again), and how many images were done then. Time queued behind other jobs, or
    /// while the coordinator was down, does not count as work.
    struct JobPace {
        var started: Date
        var imagesAtStart: Int
    }

    public init() {}

    /// Follows one of the broker's events (just after the broker made it, so its records are
    /// as the event left them).
    public func note(_ event: BrokerEvent, broker: TaskBroker) {
        switch event {
        case .workerJoined(let node, _):
            throughput.joined(node: node)
        case .workerLeft(let node, let host, let reason, let at):
            throughput.left(node: node, host: host, reason: reason, at: at)
        case .taskAssigned(let jobID, let at):
            if paces[jobID] == nil, let job = broker.jobs[jobID] {
                paces[jobID] = JobPace(started: at, imagesAtStart: broker.imageCounts(job).done)
            }
        case .imageFinished(let node, let at):
            throughput.record(node: node, images: 1, at: at)
        case .editFinished(let job, let edit, let at):
            results.append((job, edit, at))
            if results.count > Self.resultCount { results.removeFirst(results.count - Self.resultCount) }
        case .lineFinished:
            // A line's pictures are its kept pairs, not one grid: the job's row tells its counts.
            break
        }
    }

    /// Forgets throughput and departures older than the chart's window (every second).
    public func prune(now: Date) { throughput.prune(now: now) }

    /// What the page shows now.
    public func snapshot(of broker: TaskBroker, now: Date) -> DashboardSnapshot {
        var nodes = broker.nodeStatuses(now: now).map { DashboardSnapshot.Node($0, history: throughput.imagesPerMinute(node: $0.id, now: now)) }
        let connected = Set(nodes.map(\.id))
        for (node, departure) in throughput.departures.sorted(by: { $0.key < $1.key }) where !connected.contains(node) {
            nodes.append(DashboardSnapshot.Node(
                id: node, host: departure.host, state: "gone", task: nil, stepsPerSecond: 0, imagesPerMinute: 0, done: 0, failed: 0,
                lastHeard: now.timeIntervalSince(departure.at), models: [], reason: departure.reason,
                history: throughput.imagesPerMinute(node: node, now: now)))
        }
        let recentJobs = Array(broker.latestJobs(Self.jobCount).reversed())
        var failures: [DashboardSnapshot.Failure] = []
        for job in recentJobs {
            for id in job.editOrder.reversed() {
                guard let edit = job.edits[id], edit.state == .failed, failures.count < Self.failureCount else { continue }
                failures.append(DashboardSnapshot.Failure(job: job.id, edit: id, reason: edit.error ?? "failed"))
            }
            for id in job.lineOrder.reversed() {
                guard let line = job.lines[id], line.state == .failed, failures.count < Self.failureCount else { continue }
                failures.append(DashboardSnapshot.Failure(job: job.id, edit: id, reason: line.error ?? "failed"))
            }
        }
        let latest = results.reversed().map { result in
            let base = "results/\(Self.pathComponent(result.job))/\(Self.pathComponent(result.edit))"
            return DashboardSnapshot.Result(job: result.job, edit: result.edit, age: now.timeIntervalSince(result.at),
                                            thumbnail: base + "/thumbnail.png", grid: base + "/" + EditOutputs.gridName)
        }
        let counts = broker.taskCounts
        return DashboardSnapshot(
            time: now.timeIntervalSince1970, bucketSeconds: ThroughputHistory.bucketSeconds, nodes: nodes,
            queuedTasks: counts.queued, leasedTasks: counts.leased, unserved: broker.unservedSince.mapValues { now.timeIntervalSince($0) },
            jobs: recentJobs.map { job(of: $0, broker: broker, now: now) }, failures: failures, results: latest)
    }

    private func job(of job: JobRecord, broker: TaskBroker, now: Date) -> DashboardSnapshot.Job {
        let status = broker.jobStatus(job)
        let (done, total) = broker.imageCounts(job)
        var eta: Double?
        if !job.isComplete, let pace = paces[job.id], done > pace.imagesAtStart {
            eta = now.timeIntervalSince(pace.started) * Double(total - done) / Double(done - pace.imagesAtStart)
        }
        let lastOutput = (job.edits.values.compactMap(\.finishedAt) + job.lines.values.compactMap(\.finishedAt)).max()
        return DashboardSnapshot.Job(id: job.id, state: status.state, output: job.output.path, edits: status.edits,
                                     finished: status.finished, failed: status.failed, imagesDone: done, imagesTotal: total,
                                     age: now.timeIntervalSince(job.created), eta: eta,
                                     duration: job.isComplete ? lastOutput.map { $0.timeIntervalSince(job.created) } : nil,
                                     waiting: broker.editsWaitingForAModel(job), variants: status.variants)
    }

    /// A job or edit id as one path segment of the page's links.
    static func pathComponent(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%;")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
