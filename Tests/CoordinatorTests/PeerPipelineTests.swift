@testable import Coordinator
import EditContract
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing
import Wire

/// A connection's pipeline on the coordinator's side (frames, `ServerHandshakeHandler`,
/// `PeerRouter`) on NIO's EmbeddedChannel, over a broker with storage in memory.
final class PeerPipeline {
    let loop = EmbeddedEventLoop()
    let secret = SharedSecret(Array("a cluster secret of some length".utf8))
    let codec = TensorCodec()
    let shell: BrokerShell
    let metrics = CoordinatorMetrics()
    let output = URL(fileURLWithPath: "/results")
    let credentials: RoleCredentials
    let outputRoot: OutputRoot?

    /// `credentials`: what signs each role in (default: `secret` for every role).
    init(credentials: RoleCredentials? = nil, outputRoot: OutputRoot? = nil, settings: BrokerSettings = BrokerSettings()) throws {
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        self.credentials = credentials ?? RoleCredentials(shared: secret)
        self.outputRoot = outputRoot
        let storage = Storage(journal: MemoryJournal(), store: MemoryResultStore(), logger: logger)
        let broker = TaskBroker(nextJobNumber: 1, metrics: metrics, logger: logger, settings: settings)
        shell = BrokerShell(broker: broker, board: StatusBoard(), storage: InlineStorage(storage), loop: loop)
    }

    var broker: TaskBroker { shell.broker }

    /// A new connection from `address`, active.
    func connection(from address: String = "10.0.0.7") throws -> EmbeddedChannel {
        let limits = ConnectionLimits.unauthenticated()
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let refusal = Refusal(metrics: metrics, logger: logger)
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: codec)),
            MessageToByteHandler(WireMessageEncoder(codec: codec)),
            ServerHandshakeHandler(credentials: credentials, limits: limits, workerTensorBytes: codec.limit, refusal: refusal, logger: logger),
            PeerRouter(shell: shell, refusal: refusal, outputRoot: outputRoot, logger: logger),
        ])
        try channel.connect(to: SocketAddress(ipAddress: address, port: 4000)).wait()
        return channel
    }

    func frame(_ message: WireMessage) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try WireMessageEncoder(codec: codec).encode(data: message, out: &buffer)
        return buffer
    }

    /// Feeds a message in, a byte at a time when asked.
    func send(_ message: WireMessage, to channel: EmbeddedChannel, byteByByte: Bool = false) throws {
        var bytes = try frame(message)
        if byteByByte {
            while let byte = bytes.readSlice(length: 1) { try channel.writeInbound(byte) }
        } else {
            try channel.writeInbound(bytes)
        }
    }

    /// Every message the coordinator wrote to `channel` since the last look.
    func received(_ channel: EmbeddedChannel) throws -> [WireMessage] {
        var messages: [WireMessage] = []
        while var frame = try channel.readOutbound(as: ByteBuffer.self) {
            frame.moveReaderIndex(forwardBy: 4)
            messages.append(try WireMessage.decode(&frame, codec: codec, tensorBytes: 1 << 30))
        }
        return messages
    }

    /// Runs the handshake as `role` with `secret` (default: the pipeline's); returns the session id welcomed.
    @discardableResult
    func signIn(_ channel: EmbeddedChannel, role: PeerRole, node: String, models: [String] = ["default"], byteByByte: Bool = false,
                secret: SharedSecret? = nil) throws -> String {
        var handshake = ClientHandshake(secret: secret ?? self.secret, role: role, nodeID: node)
        try send(handshake.hello(capabilities: NodeCapabilities(models: models, threads: 2, host: node, version: "t")), to: channel, byteByByte: byteByByte)
        guard case .challenge(let nonce)? = try received(channel).first else { throw SubmissionError("no challenge") }
        try send(try handshake.answer(challenge: nonce), to: channel, byteByByte: byteByByte)
        guard case .welcome(let session, let proof)? = try received(channel).first else { throw SubmissionError("not welcomed") }
        try handshake.accept(welcomeProof: proof)
        return session
    }

    static func edit(_ id: String) -> EditEnvelope { try! EditEnvelope(EditSpec(id: id, source: "a red circle", targets: ["a blue circle"])) }
}

@Suite("the coordinator's connection pipeline on EmbeddedChannel")
struct PeerPipelineTests {
    @Test("the handshake fed one byte at a time signs a worker in, which joins the broker and is offered work")
    func oneByteHandshake() throws {
        let p = try PeerPipeline()
        let channel = try p.connection()
        let session = try p.signIn(channel, role: .worker, node: "w1", byteByByte: true)
        #expect(p.broker.status().nodes.map(\.id) == ["w1"] && session.hasPrefix("w1#"))
        #expect(p.broker.status().nodes.first?.host == "w1 (10.0.0.7)")
        _ = try p.broker.submit([PeerPipeline.edit("a")], output: p.output.path)
        p.shell.run { _ in }
        try p.send(.credit(slots: 1), to: channel, byteByByte: true)
        guard case .assign(let taskID, .stageOne(let edits, _))? = try p.received(channel).first else { Issue.record("no work"); return }
        #expect(taskID == "job-1.s1" && edits.map(\.id) == ["a"])
    }

    @Test("a wrong secret, another protocol version, or a message before the handshake: an error frame and a close; nothing joins")
    func refusals() throws {
        let p = try PeerPipeline()
        // The wrong secret.
        let wrong = try p.connection()
        var handshake = ClientHandshake(secret: SharedSecret(Array("another secret, also long enough".utf8)), role: .worker, nodeID: "intruder")
        try p.send(handshake.hello(), to: wrong)
        guard case .challenge(let nonce)? = try p.received(wrong).first else { Issue.record("no challenge"); return }
        try p.send(try handshake.answer(challenge: nonce), to: wrong)
        #expect(try p.received(wrong) == [.error(code: WireError.Code.authenticationFailed.rawValue, reason: "wrong cluster secret (node 'intruder')")])
        #expect(!wrong.isActive)
        // Another version.
        let old = try p.connection()
        try p.send(.hello(version: 3, role: .worker, nodeID: "old", capabilities: NodeCapabilities(), nonce: Array(repeating: 1, count: 32)), to: old)
        #expect(try p.received(old) == [.error(code: WireError.Code.badVersion.rawValue, reason: "protocol version 3; this coordinator speaks \(WireProtocol.version)")])
        // Work offered before the handshake.
        let early = try p.connection()
        try p.send(.credit(slots: 1), to: early)
        #expect(try p.received(early) == [.error(code: WireError.Code.unexpectedMessage.rawValue, reason: "'credit' before the handshake finished")])
        // A frame no peer sends.
        let garbage = try p.connection()
        var bytes = ByteBuffer()
        bytes.writeInteger(UInt32(1))
        bytes.writeInteger(UInt8(99))
        _ = try? garbage.writeInbound(bytes)
        if case .error(let code, _)? = try p.received(garbage).first { #expect(code == WireError.Code.unknownMessage.rawValue) } else { Issue.record("no refusal") }
        #expect(p.broker.status().nodes.isEmpty && p.metrics.exposition().contains("ptp_rejected_connections_total 4"))
    }

    @Test("a connection closed mid-handshake leaves nothing; a worker's close after joining gives its task back")
    func earlyAndLateCloses() throws {
        let p = try PeerPipeline()
        let early = try p.connection()
        let handshake = ClientHandshake(secret: p.secret, role: .worker, nodeID: "w0")
        try p.send(handshake.hello(), to: early)
        _ = try early.finish()
        #expect(p.broker.status().nodes.isEmpty)

        _ = try p.broker.submit([PeerPipeline.edit("a")], output: p.output.path)
        p.shell.run { _ in }
        let worker = try p.connection()
        try p.signIn(worker, role: .worker, node: "w1")
        try p.send(.credit(slots: 1), to: worker)
        #expect(p.broker.task("job-1.s1")?.state == .leased)
        _ = try worker.finish()
        #expect(p.broker.status().nodes.isEmpty && p.broker.task("job-1.s1")?.state == .queued)
        #expect(p.broker.task("job-1.s1")?.lastError == "worker w1 left (connection closed)")
    }

    @Test("no handshake within the deadline: refused")
    func handshakeDeadline() throws {
        let p = try PeerPipeline()
        let silent = try p.connection()
        p.loop.advanceTime(by: .seconds(9))
        #expect(try p.received(silent).isEmpty && silent.isActive)
        p.loop.advanceTime(by: .seconds(2))
        #expect(try p.received(silent) == [.error(code: WireError.Code.authenticationFailed.rawValue, reason: "no handshake within 10 s")])
        #expect(!silent.isActive)
        // A finished handshake is not refused later.
        let prompt = try p.connection()
        try p.signIn(prompt, role: .monitor, node: "m")
        p.loop.advanceTime(by: .seconds(20))
        #expect(prompt.isActive)
    }

    @Test("each role sends only its own messages: a client's credit and a worker's job are refused; clients may ask for the status")
    func roles() throws {
        let p = try PeerPipeline()
        let client = try p.connection()
        try p.signIn(client, role: .client, node: "c")
        try p.send(.statusRequest, to: client)
        guard case .statusReport(let status)? = try p.received(client).first else { Issue.record("no status"); return }
        #expect(status.nodes.isEmpty && status.jobs.isEmpty)
        try p.send(.credit(slots: 5), to: client)
        #expect(try p.received(client) == [.error(code: WireError.Code.forbidden.rawValue,
                                                  reason: "a client credential cannot 'credit': " + PeerRouter.allowed(.client))])
        #expect(!client.isActive)

        let worker = try p.connection()
        try p.signIn(worker, role: .worker, node: "w1")
        try p.send(.submit(outputDirectory: "/results", layout: .ptp, edits: [PeerPipeline.edit("a")]), to: worker)
        #expect(try p.received(worker) == [.error(code: WireError.Code.forbidden.rawValue,
                                                  reason: "a worker credential cannot 'submit': " + PeerRouter.allowed(.worker))])
        #expect(p.broker.jobs.isEmpty && p.broker.status().nodes.isEmpty, "the refused worker left")
    }

    @Test("a client's job is accepted once journaled, and its watch hears the progress to the end")
    func submitAndWatch() throws {
        let p = try PeerPipeline()
        let client = try p.connection()
        try p.signIn(client, role: .client, node: "c")
        try p.send(.submit(outputDirectory: "relative", layout: .ptp, edits: [PeerPipeline.edit("a")]), to: client)
        guard case .error(let code, let reason)? = try p.received(client).first else { Issue.record("not refused"); return }
        #expect(code == WireError.Code.rejected.rawValue && reason.contains("absolute path"))
        try p.send(.submit(outputDirectory: "/results", layout: .ptp, edits: [PeerPipeline.edit("a")]), to: client)
        #expect(try p.received(client) == [.accepted(jobID: "job-1", edits: 1, output: "/results")])
        try p.send(.watch(jobID: "job-1"), to: client)
        guard case .jobProgress(_, let first)? = try p.received(client).first else { Issue.record("no progress"); return }
        #expect(first.job.state == "running" && first.job.edits == 1)

        let worker = try p.connection()
        try p.signIn(worker, role: .worker, node: "w1")
        try p.send(.credit(slots: 1), to: worker)
        while case .assign(let taskID, let work)? = try p.received(worker).first {
            try p.send(.result(taskID: taskID, result: Self.answer(work)), to: worker)
            try p.send(.credit(slots: 1), to: worker)
        }
        let reports = try p.received(client).compactMap { message -> JobProgressReport? in
            if case .jobProgress(_, let report) = message { return report }
            return nil
        }
        #expect(reports.last?.job.state == "completed" && reports.last?.job.finished == 1, "\(reports)")
    }

    static func answer(_ work: TaskWork) -> TaskResult {
        switch work {
        case .stageOne(let edits, _):
            return .stageOne(edits.map { edit in
                let run = EditRun(model: "m", mode: .replace, settings: .init(steps: 1, guidance: 1, height: 8, width: 8, scheduler: nil, precision: .fp32))
                return StageOneEdit(id: edit.id, outcome: .ran(run, seconds: 0, output: TensorPayload(name: "latents", shape: [2, 4, 1, 1],
                                                                                                    floats: [Float](repeating: 0, count: 8))))
            })
        case .finish:
            return .finish(FinishedImage(seconds: 0, image: TensorPayload(name: "image", elementType: .uint8, shape: [8, 8, 3],
                                                                          bytes: [UInt8](repeating: 9, count: 192))))
        case .variant:
            return .variant(.failed(reason: "no variants in this pipeline"))
        }
    }
}
