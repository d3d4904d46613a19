import EditContract
import Foundation
import NIOCore
import Wire

/// The broker on the coordinator's event loop: peers' messages go in as calls, and what the
/// broker decides goes out: work to the workers' channels, progress to the channels watching a
/// job, storage requests to the storage executor (whose outcomes come back here), events to the
/// status board. Confined to `loop`.
final class BrokerShell {
    let broker: TaskBroker
    let board: StatusBoard
    let loop: EventLoop
    private let storage: StorageExecutor
    /// Workers' channels by session.
    private var channels: [String: Channel] = [:]
    /// Channels watching a job, by job id.
    private var watchers: [String: [Channel]] = [:]
    /// Clients waiting to hear whether their job is journaled, by job id.
    private var submitters: [String: (channel: Channel, edits: Int)] = [:]
    /// Clients waiting to hear that their picture is kept, by digest.
    private var pictureSenders: [String: [Channel]] = [:]
    /// Storage outcomes not yet given to the broker, and whether they are being given.
    private var outcomes: [StorageOutcome] = []
    private var delivering = false

    init(broker: TaskBroker, board: StatusBoard, storage: StorageExecutor, loop: EventLoop) {
        (self.broker, self.board, self.storage, self.loop) = (broker, board, storage, loop)
    }

    /// Runs `body` on the broker, then carries out what it decided.
    func run<Result>(_ body: (TaskBroker) throws -> Result) rethrows -> Result {
        defer { deliver() }
        return try body(broker)
    }

    func workerJoined(sessionID: String, nodeID: String, host: String, models: Set<String>, channel: Channel) {
        channels[sessionID] = channel
        run { $0.workerJoined(sessionID: sessionID, nodeID: nodeID, host: host, models: models) }
    }

    func workerLeft(_ sessionID: String, reason: String) {
        channels[sessionID] = nil
        run { $0.workerLeft(sessionID, reason: reason) }
    }

    /// A job from a client on `channel`: refused at once when its edits or folder are wrong,
    /// else accepted once it is journaled.
    func submit(_ edits: [EditEnvelope], output: String, layout: OutputLayout = .ptp, client: String = "local", from channel: Channel) throws {
        let jobID = try broker.submit(edits, output: output, layout: layout, client: client)
        // Known before the storage request goes out: its outcome may come back at once.
        submitters[jobID] = (channel, edits.count)
        deliver()
    }

    /// A picture from a client on `channel`: refused at once when it is wrong, else answered
    /// once it is kept.
    func keepPicture(_ picture: CarriedPicture, client: String = "local", from channel: Channel) throws {
        // One picture in flight per client: a catalogue streams through, never piles up here.
        guard !pictureSenders.values.contains(where: { $0.contains { $0 === channel } }) else {
            throw SubmissionError("a picture was sent before the previous one was kept; wait for each picture's answer")
        }
        try broker.pictureArrived(picture, client: client)
        pictureSenders[picture.digest, default: []].append(channel)
        deliver()
    }

    /// Sends the job's progress to `channel` now and whenever it changes, until it closes;
    /// false for an unknown job.
    func watch(_ jobID: String, channel: Channel) -> Bool {
        guard broker.progressReport(jobID) != nil else { return false }
        watchers[jobID, default: []].append(channel)
        let shell = NIOLoopBound(self, eventLoop: loop)
        channel.closeFuture.whenComplete { _ in
            shell.eventLoop.execute { shell.value.watchers[jobID]?.removeAll { $0 === channel } }
        }
        send(jobID, to: channel)
        return true
    }

    /// What came of a storage request (on `loop`).
    private func stored(_ outcome: StorageOutcome) {
        outcomes.append(outcome)
        deliver()
    }

    private func deliver() {
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        while true {
            let decided = broker.takeOutput()
            if decided.isEmpty && outcomes.isEmpty { return }
            for item in decided { carryOut(item) }
            let arrived = outcomes
            outcomes.removeAll()
            for outcome in arrived { take(outcome) }
        }
    }

    private func carryOut(_ item: BrokerOutput) {
        switch item {
        case .assign(let session, let taskID, let work):
            // A worker already gone: the broker hears of it from its connection's close.
            channels[session]?.writeAndFlush(WireMessage.assign(taskID: taskID, work: work), promise: nil)
        case .jobChanged(let jobID):
            for channel in watchers[jobID] ?? [] { send(jobID, to: channel) }
        case .store(let request):
            let shell = NIOLoopBound(self, eventLoop: loop)
            storage.submit(request) { outcome in
                if shell.eventLoop.inEventLoop { shell.value.stored(outcome) } else { shell.eventLoop.execute { shell.value.stored(outcome) } }
            }
        case .event(let event):
            board.note(event, broker: broker)
        }
    }

    private func take(_ outcome: StorageOutcome) {
        switch outcome {
        case .jobStored(let jobID):
            broker.stored(outcome)
            if let (channel, count) = submitters.removeValue(forKey: jobID) {
                channel.writeAndFlush(WireMessage.accepted(jobID: jobID, edits: UInt32(count), output: broker.jobs[jobID]?.output.path ?? ""), promise: nil)
            }
        case .jobNotStored(let jobID, let reason):
            broker.stored(outcome)
            if let (channel, _) = submitters.removeValue(forKey: jobID) {
                channel.writeAndFlush(WireMessage.error(code: WireError.Code.rejected.rawValue, reason: reason), promise: nil)
            }
        case .pictureKept(let digest, _):
            broker.stored(outcome)
            for channel in pictureSenders.removeValue(forKey: digest) ?? [] {
                channel.writeAndFlush(WireMessage.pictureKept(digest: digest), promise: nil)
            }
        case .pictureNotKept(let digest, let reason):
            broker.stored(outcome)
            for channel in pictureSenders.removeValue(forKey: digest) ?? [] {
                channel.writeAndFlush(WireMessage.error(code: WireError.Code.rejected.rawValue, reason: "picture \(digest.prefix(12)) not kept: \(reason)"), promise: nil)
            }
        default:
            broker.stored(outcome)
        }
    }

    private func send(_ jobID: String, to channel: Channel) {
        guard let report = broker.progressReport(jobID) else { return }
        channel.writeAndFlush(WireMessage.jobProgress(jobID: jobID, report: report), promise: nil)
    }

    /// Runs `done` on `loop` once every storage request made so far is carried out.
    func whenStorageIdle(_ done: @escaping () -> Void) {
        let loop = NIOLoopBound(done, eventLoop: self.loop)
        storage.whenIdle { loop.eventLoop.execute { loop.value() } }
    }
}
