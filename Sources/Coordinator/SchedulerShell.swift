import EditContract
import Foundation
import NIOCore
import Wire

/// The scheduling core on the coordinator's event loop: peers' messages go in as calls, and
/// what the core decides goes out to the workers' channels and to the channels watching a job.
/// Confined to `loop`.
final class SchedulerShell {
    let core: Scheduler
    let loop: EventLoop
    /// Workers' channels by session.
    private var channels: [String: Channel] = [:]
    /// Channels watching a job, by job id.
    private var watchers: [String: [Channel]] = [:]

    init(core: Scheduler, loop: EventLoop) {
        self.core = core
        self.loop = loop
    }

    /// Runs `body` on the core, then carries out what it decided.
    func run<Result>(_ body: (Scheduler) throws -> Result) rethrows -> Result {
        defer { deliver() }
        return try body(core)
    }

    func workerJoined(sessionID: String, nodeID: String, host: String, models: Set<String>, channel: Channel) {
        channels[sessionID] = channel
        run { $0.workerJoined(sessionID: sessionID, nodeID: nodeID, host: host, models: models) }
    }

    func workerLeft(_ sessionID: String, reason: String) {
        channels[sessionID] = nil
        run { $0.workerLeft(sessionID, reason: reason) }
    }

    /// A job from a client: the JSON array of its edits, decoded and checked by the edit
    /// contract. Returns the job id and its number of edits.
    func submit(editsJSON: String, output: String) throws -> (String, Int) {
        let specs = try EditSpec.batch(json: editsJSON)
        return (try run { try $0.submit(specs, output: output) }, specs.count)
    }

    /// Sends the job's progress to `channel` now and whenever it changes, until it closes;
    /// false for an unknown job.
    func watch(_ jobID: String, channel: Channel) -> Bool {
        guard core.progressReport(jobID) != nil else { return false }
        watchers[jobID, default: []].append(channel)
        let shell = NIOLoopBound(self, eventLoop: loop)
        channel.closeFuture.whenComplete { _ in
            shell.eventLoop.execute { shell.value.watchers[jobID]?.removeAll { $0 === channel } }
        }
        send(jobID, to: channel)
        return true
    }

    private func deliver() {
        for item in core.takeOutput() {
            switch item {
            case .send(let session, let message):
                // A worker already gone: the core hears of it from its connection's close.
                channels[session]?.writeAndFlush(message, promise: nil)
            case .jobChanged(let jobID):
                for channel in watchers[jobID] ?? [] { send(jobID, to: channel) }
            }
        }
    }

    private func send(_ jobID: String, to channel: Channel) {
        guard let report = core.progressReport(jobID), let text = try? report.jsonText() else { return }
        channel.writeAndFlush(WireMessage.jobProgress(jobID: jobID, report: text), promise: nil)
    }
}
