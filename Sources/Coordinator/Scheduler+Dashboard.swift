import Foundation
import Imaging

/// The status page's view of the core.
extension Scheduler {
    /// Jobs, failures and results the page lists, newest first.
    static let dashboardJobs = 20
    static let dashboardFailures = 20
    static let dashboardResults = 12

    public func dashboard() -> DashboardSnapshot {
        let now = now()
        var nodes = workers.values.sorted { $0.nodeID < $1.nodeID }.map { session in
            DashboardSnapshot.Node(nodeStatus(session, now: now), history: throughput.imagesPerMinute(node: session.nodeID, now: now))
        }
        let connected = Set(nodes.map(\.id))
        for (node, departure) in throughput.departures.sorted(by: { $0.key < $1.key }) where !connected.contains(node) {
            nodes.append(DashboardSnapshot.Node(
                id: node, host: departure.host, state: "gone", task: nil, stepsPerSecond: 0, imagesPerMinute: 0, done: 0, failed: 0,
                lastHeard: now.timeIntervalSince(departure.at), models: [], reason: departure.reason,
                history: throughput.imagesPerMinute(node: node, now: now)))
        }

        let recentJobs = jobOrder.suffix(Self.dashboardJobs).reversed().compactMap { jobs[$0] }
        var failures: [DashboardSnapshot.Failure] = []
        for job in recentJobs {
            for id in job.editOrder.reversed() {
                guard let edit = job.edits[id], edit.state == .failed, failures.count < Self.dashboardFailures else { continue }
                failures.append(DashboardSnapshot.Failure(job: job.id, edit: id, reason: edit.error ?? "failed"))
            }
        }
        let results = recentResults.reversed().map { edit in
            let base = "results/\(Self.pathComponent(edit.job))/\(Self.pathComponent(edit.id))"
            return DashboardSnapshot.Result(job: edit.job, edit: edit.id, age: now.timeIntervalSince(edit.finishedAt ?? now),
                                            thumbnail: base + "/thumbnail.png", grid: base + "/" + EditOutputs.gridName)
        }
        return DashboardSnapshot(
            time: now.timeIntervalSince1970, bucketSeconds: ThroughputHistory.bucketSeconds, nodes: nodes,
            queuedTasks: queuedCount, leasedTasks: tasks.values.filter { $0.state == .leased }.count,
            unserved: unservedSince.mapValues { now.timeIntervalSince($0) },
            jobs: recentJobs.map { dashboardJob($0, now: now) }, failures: failures, results: results)
    }

    /// An edit's outputs are written: it leads the page's latest results.
    func noteResult(_ edit: EditRecord) {
        recentResults.append(edit)
        if recentResults.count > Self.dashboardResults { recentResults.removeFirst(recentResults.count - Self.dashboardResults) }
    }

    /// A job's pace: when its work was first given out (by this coordinator: a restarted one
    /// starts again), and how many images were done then. Time queued behind other jobs, or
    /// while the coordinator was down, does not count as work.
    struct JobPace {
        var started: Date
        var imagesAtStart: Int
    }

    /// Images made of a job's total (a source and its targets per edit; a failed edit makes no
    /// more, so it counts as done for the pace and the bar).
    func imageCounts(_ job: JobRecord) -> (done: Int, total: Int) {
        job.edits.values.reduce(into: (0, 0)) { counts, edit in
            counts.1 += edit.prompts
            counts.0 += edit.state == .finished || edit.state == .failed ? edit.prompts : edit.imagesDone
        }
    }

    func dashboardJob(_ job: JobRecord, now: Date) -> DashboardSnapshot.Job {
        let status = jobStatus(job)
        let (done, total) = imageCounts(job)
        let waiting = job.edits.values.filter { $0.state == .pending && unservedSince[$0.model] != nil }.count
        var eta: Double?
        if !job.isComplete, let pace = paces[job.id], done > pace.imagesAtStart {
            eta = now.timeIntervalSince(pace.started) * Double(total - done) / Double(done - pace.imagesAtStart)
        }
        let lastOutput = job.edits.values.compactMap(\.finishedAt).max()
        return DashboardSnapshot.Job(id: job.id, state: status.state, output: job.output.path, edits: status.edits,
                                     finished: status.finished, failed: status.failed, imagesDone: done, imagesTotal: total,
                                     age: now.timeIntervalSince(job.created), eta: eta,
                                     duration: job.isComplete ? lastOutput.map { $0.timeIntervalSince(job.created) } : nil, waiting: waiting)
    }

    /// Forgets throughput and departures older than the chart's window (every second).
    public func pruneThroughput() { throughput.prune(now: now()) }

    /// The grid file of a finished edit, for the page's links; nil for anything else. The page
    /// names results by job and edit id only, so no path from a request reaches the disk.
    public func resultGrid(job jobID: String, edit editID: String) -> URL? {
        guard let job = jobs[jobID], let edit = job.edits[editID], edit.state == .finished else { return nil }
        return job.output.appendingPathComponent(edit.id).appendingPathComponent(EditOutputs.gridName)
    }

    static func pathComponent(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%;")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
