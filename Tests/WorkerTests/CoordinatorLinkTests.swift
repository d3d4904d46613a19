import EditContract
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing
import Wire
@testable import Worker

/// Plays the coordinator's side of the handshake.
struct CoordinatorSide {
    let secret = SharedSecret(Array("a cluster secret of some length".utf8))
    let nonce = SharedSecret.nonce()

    /// The challenge answering `hello`, and the welcome proving the secret to its sender.
    func welcome(_ hello: WireMessage, session: String = "s#1", secret other: SharedSecret? = nil) -> (challenge: WireMessage, welcome: WireMessage) {
        guard case .hello(_, let role, let node, _, let peerNonce) = hello else { return (.challenge(nonce: nonce), .goodbye(reason: "no hello")) }
        let proof = (other ?? secret).proof(by: .coordinator, version: WireProtocol.version, role: role, nodeID: node, peerNonce: peerNonce, coordinatorNonce: nonce)
        return (.challenge(nonce: nonce), .welcome(sessionID: session, proof: proof))
    }
}

/// What reaches the end of a pipeline.
final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    var messages: [WireMessage] = []
    var events: [Any] = []
    var errors: [Error] = []
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { messages.append(unwrapInboundIn(data)) }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) { events.append(event) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { errors.append(error) }
}

@Suite("the worker's link to the coordinator, its parts on EmbeddedChannel")
struct CoordinatorLinkTests {
    let side = CoordinatorSide()
    let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    func frames(_ messages: [WireMessage]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for message in messages { try WireMessageEncoder(codec: TensorCodec()).encode(data: message, out: &buffer) }
        return buffer
    }

    func outbound(_ channel: EmbeddedChannel) throws -> [WireMessage] {
        var messages: [WireMessage] = []
        while var frame = try channel.readOutbound(as: ByteBuffer.self) {
            frame.moveReaderIndex(forwardBy: 4)
            messages.append(try WireMessage.decode(&frame, codec: TensorCodec(), tensorBytes: 1 << 30))
        }
        return messages
    }

    @Test("the client handshake, fed a byte at a time, answers the challenge, checks the welcome, then passes messages on")
    func handshakeOneByteAtATime() throws {
        let limits = ConnectionLimits.unauthenticated()
        let collector = Collector()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: TensorCodec())), MessageToByteHandler(WireMessageEncoder(codec: TensorCodec())),
            ClientHandshakeHandler(handshake: ClientHandshake(secret: side.secret, role: .worker, nodeID: "w1"),
                                   capabilities: NodeCapabilities(models: ["default"], threads: 2, host: "h", version: "t"), limits: limits, tensorBytes: 1 << 20),
            collector,
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7070)).wait()
        let hello = try #require(try outbound(channel).first)
        guard case .hello(_, .worker, "w1", let capabilities, _) = hello else { Issue.record("no hello: \(hello)"); return }
        #expect(capabilities.models == ["default"])
        let (challenge, welcome) = side.welcome(hello)
        let work = TaskWork.finish(FinishWork(edit: "a", index: 0, spec: FinishSpec(model: "default", precision: .fp32, seed: 1, superResolution: false, prompt: "p"),
                                              input: TensorPayload(name: "input", shape: [1, 1], floats: [1])))
        var bytes = try frames([challenge])
        while let byte = bytes.readSlice(length: 1) { try channel.writeInbound(byte) }
        guard case .proof? = try outbound(channel).first else { Issue.record("no proof"); return }
        #expect(collector.events.isEmpty && limits.tensorBytes == 0)
        // The welcome and the first work in one read, a byte at a time: the work's tensor is
        // read only once the welcome has raised the limits.
        bytes = try frames([welcome, .assign(taskID: "t1", work: work)])
        while let byte = bytes.readSlice(length: 1) { try channel.writeInbound(byte) }
        #expect((collector.events.first as? ClientHandshakeHandler.Joined)?.sessionID == "s#1" && limits.tensorBytes == 1 << 20)
        #expect(collector.messages == [.assign(taskID: "t1", work: work)] && collector.errors.isEmpty)
    }

    @Test("a coordinator that cannot prove the secret or hands out work unproven is not trusted; a refusal is told as one")
    func untrustedCoordinators() throws {
        func attempt(_ answer: (WireMessage) -> [WireMessage]) throws -> (Collector, EmbeddedChannel) {
            let collector = Collector()
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandlers([
                ClientHandshakeHandler(handshake: ClientHandshake(secret: side.secret, role: .client, nodeID: "c"), limits: .unauthenticated(), tensorBytes: 0),
                collector,
            ])
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7070)).wait()
            let hello = try #require(try channel.readOutbound(as: WireMessage.self))
            for message in answer(hello) { try channel.writeInbound(message) }
            return (collector, channel)
        }
        let impostor = try attempt { hello in
            let (challenge, welcome) = side.welcome(hello, secret: SharedSecret(Array("another secret, also long enough".utf8)))
            return [challenge, welcome]
        }
        #expect(impostor.0.errors.first as? ConnectionError == .untrusted(
            "the coordinator could not prove it holds the cluster secret (wrong secret on one side, or not our coordinator)"))
        #expect(impostor.0.events.isEmpty && !impostor.1.isActive)
        let eager = try attempt { _ in [.statusReport(ClusterStatus(nodes: [], jobs: [], queuedTasks: 0, leasedTasks: 0))] }
        #expect(eager.0.errors.first as? ConnectionError == .untrusted("the coordinator sent 'status report' before proving the cluster secret"))
        #expect(eager.0.messages.isEmpty)
        let refused = try attempt { _ in [.error(code: WireError.Code.authenticationFailed.rawValue, reason: "wrong cluster secret (node 'c')")] }
        #expect(refused.0.errors.first as? ConnectionError == .refused(WireError(.authenticationFailed, "wrong cluster secret (node 'c')")))
        #expect("\(refused.0.errors.first.map { "\($0)" } ?? "")" == "the coordinator refused the connection: wrong cluster secret (node 'c')")
    }

    @Test("heartbeats start when the handshake finishes, name the running tasks, and stop with the connection")
    func heartbeats() throws {
        let running = RunningTasks()
        let channel = EmbeddedChannel(handler: HeartbeatHandler(interval: .seconds(5), running: { running.ids }))
        channel.embeddedEventLoop.advanceTime(by: .seconds(20))
        #expect(try channel.readOutbound(as: WireMessage.self) == nil, "no heartbeat before the welcome")
        channel.pipeline.fireUserInboundEventTriggered(ClientHandshakeHandler.Joined(sessionID: "s"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(try channel.readOutbound(as: WireMessage.self) == .heartbeat(taskIDs: []))
        running.ids = ["job-1.s1"]
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(try channel.readOutbound(as: WireMessage.self) == .heartbeat(taskIDs: ["job-1.s1"]))
        try channel.close().wait()
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(try channel.readOutbound(as: WireMessage.self) == nil, "no heartbeat after the close")
    }

    @Test("the reconnector tries again after a delay that doubles to the maximum, starts over once welcomed, and stops for good")
    func reconnection() throws {
        let loop = EmbeddedEventLoop()
        var attempts: [UInt64] = []
        var opened: [EmbeddedChannel] = []
        var failing = true
        let reconnector = Reconnector(loop: loop, maximumBackoff: .seconds(2), logger: logger) {
            attempts.append(loop.now.uptimeNanoseconds / 1_000_000)
            if failing { return loop.makeFailedFuture(ConnectionError.unreachable("refused")) }
            let channel = EmbeddedChannel(loop: loop)
            opened.append(channel)
            return loop.makeSucceededFuture(channel)
        }
        let start = loop.now.uptimeNanoseconds / 1_000_000
        reconnector.start()
        loop.advanceTime(by: .seconds(10))
        // At once, then after 0.5, 1, 2, 2, 2 s...
        #expect(attempts.prefix(6).map { $0 - start } == [0, 500, 1500, 3500, 5500, 7500], "\(attempts.map { $0 - start })")
        failing = false
        loop.advanceTime(by: .seconds(2))
        let first = try #require(opened.first)
        #expect(reconnector.channel === first && opened.count == 1)
        reconnector.resetBackoff()
        let before = attempts.count
        // Closed, not finished: `finish` would cancel every task scheduled on the shared loop.
        try first.close().wait()
        loop.advanceTime(by: .milliseconds(499))
        #expect(attempts.count == before, "waits the initial backoff again")
        loop.advanceTime(by: .milliseconds(1))
        #expect(attempts.count == before + 1 && opened.count == 2)
        reconnector.stop()
        #expect(!opened[1].isActive)
        loop.advanceTime(by: .seconds(60))
        #expect(attempts.count == before + 1, "no attempt after stop")
    }

    @Test("the outbox sends at once while open; while closed it keeps results and failures, in order, and drops progress")
    func outbox() throws {
        let outbox = Outbox()
        let result = WireMessage.failed(taskID: "t1", retryable: true, reason: "oom")
        outbox.send(.progress(taskID: "t1", step: 1, total: 2))
        outbox.send(result)
        outbox.send(.credit(slots: 1))
        #expect(outbox.waiting == [result, .credit(slots: 1)])
        let channel = EmbeddedChannel()
        outbox.opened(channel)
        #expect(try channel.readOutbound(as: WireMessage.self) == result && (try channel.readOutbound(as: WireMessage.self)) == .credit(slots: 1))
        outbox.send(.progress(taskID: "t2", step: 1, total: 2))
        #expect(try channel.readOutbound(as: WireMessage.self) == .progress(taskID: "t2", step: 1, total: 2) && outbox.waiting.isEmpty)
        outbox.closed()
        outbox.send(.goodbye(reason: "x"))
        #expect(outbox.waiting == [.goodbye(reason: "x")] && !outbox.isOpen)
    }

    @Test("the link: welcomed, work handed to the worker, lost and rejoined with what waited; a wrong secret stops it for good")
    func link() throws {
        let f = LinkFixture(side: side, logger: logger)
        let (link, delegate, loop): (CoordinatorLink, RecordingDelegate, EmbeddedEventLoop) = (f.link, f.delegate, f.loop)
        link.connect()
        link.send(.failed(taskID: "t0", retryable: true, reason: "left over"))
        try f.welcome(try #require(f.channels.first))
        #expect(delegate.events == ["joined"] && link.isJoined)
        #expect(try f.channels[0].readOutbound(as: WireMessage.self) == .failed(taskID: "t0", retryable: true, reason: "left over"))
        let work = TaskWork.stageOne([try EditEnvelope(EditSpec(id: "a", source: "x y", targets: ["x z"]))], pictures: [])
        try f.channels[0].writeInbound(WireMessage.assign(taskID: "t1", work: work))
        #expect(delegate.assigned == ["t1"])
        // Lost: a result sent meanwhile waits, and goes first on the next connection.
        try f.channels[0].close().wait()
        #expect(delegate.events == ["joined", "lost"] && !link.isJoined)
        link.send(.result(taskID: "t1", result: .stageOne([])))
        loop.advanceTime(by: .milliseconds(500))
        try f.welcome(try #require(f.channels.last))
        #expect(f.channels.count == 2 && delegate.events == ["joined", "lost", "joined"])
        #expect(try f.channels[1].readOutbound(as: WireMessage.self) == .result(taskID: "t1", result: .stageOne([])))
        // Refused for the wrong secret: told once, and no reconnection follows.
        try f.channels[1].close().wait()
        loop.advanceTime(by: .milliseconds(500))
        let third = try #require(f.channels.last)
        _ = try third.readOutbound(as: WireMessage.self)
        try third.writeInbound(WireMessage.error(code: WireError.Code.authenticationFailed.rawValue, reason: "wrong cluster secret (node 'w1')"))
        #expect(delegate.refusals == [.refused(WireError(.authenticationFailed, "wrong cluster secret (node 'w1')"))])
        link.close()
        loop.advanceTime(by: .seconds(60))
        #expect(f.channels.count == 3)
    }

    @Test("leaving writes the goodbye before the connection closes, and no reconnection follows")
    func leaving() throws {
        let f = LinkFixture(side: side, logger: logger)
        f.link.connect()
        let channel = try #require(f.channels.first)
        try f.welcome(channel)
        let left = RunningTasks()
        f.link.leave { left.ids = ["done"] }
        #expect(try channel.readOutbound(as: WireMessage.self) == .goodbye(reason: "drained"))
        #expect(left.ids == ["done"] && !channel.isActive)
        f.loop.advanceTime(by: .seconds(60))
        #expect(f.channels.count == 1 && f.delegate.events == ["joined"])
    }
}

/// A link whose connections are EmbeddedChannels on one loop, and the coordinator's side of
/// their handshakes.
final class LinkFixture {
    let loop = EmbeddedEventLoop()
    let side: CoordinatorSide
    let delegate = RecordingDelegate()
    var channels: [EmbeddedChannel] = []
    var link: CoordinatorLink!

    init(side: CoordinatorSide, logger: Logger) {
        self.side = side
        link = CoordinatorLink(loop: loop, maximumBackoff: .seconds(30), logger: logger) { [unowned self] handler in
            let channel = EmbeddedChannel(loop: self.loop)
            let handshake = ClientHandshakeHandler(handshake: ClientHandshake(secret: side.secret, role: .worker, nodeID: "w1"),
                                                   limits: .unauthenticated(), tensorBytes: 1 << 20)
            do {
                try channel.pipeline.syncOperations.addHandlers([handshake, HeartbeatHandler(interval: .seconds(5), running: { [] }), handler])
                try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7070)).wait()
            } catch { return self.loop.makeFailedFuture(error) }
            self.channels.append(channel)
            return self.loop.makeSucceededFuture(channel)
        }
        link.delegate = delegate
    }

    /// Reads the connection's hello and answers as the coordinator, through the welcome.
    func welcome(_ channel: EmbeddedChannel) throws {
        let hello = try #require(try channel.readOutbound(as: WireMessage.self))
        let (challenge, welcome) = side.welcome(hello)
        try channel.writeInbound(challenge)
        _ = try channel.readOutbound(as: WireMessage.self)
        try channel.writeInbound(welcome)
    }
}

final class RunningTasks: @unchecked Sendable {
    var ids: [String] = []
}

final class RecordingDelegate: CoordinatorLinkDelegate {
    var events: [String] = []
    var assigned: [String] = []
    var refusals: [ConnectionError] = []
    func linkJoined() { events.append("joined") }
    func linkAssigned(taskID: String, work: TaskWork) { assigned.append(taskID) }
    func linkLost() { events.append("lost") }
    func linkRefused(_ error: ConnectionError) { refusals.append(error) }
}
