import Dispatch
import Engine
import Foundation
import Logging
import NIOCore
import NIOPosix
import Wire

/// A worker node: loads its models once, connects to the coordinator (reconnecting with
/// backoff), takes one task at a time on its credit, reports per-step progress and heartbeats,
/// and on SIGTERM finishes its task, delivers the result and leaves.
public final class WorkerNode: @unchecked Sendable {
    let configuration: WorkerConfiguration
    let runner: TaskRunner
    let capabilities: NodeCapabilities
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var loop: EventLoop { group.next() }
    let compute = DispatchQueue(label: "ptp.worker.compute")

    // Everything below is touched on `loop` only.
    private var channel: Channel?
    /// The current connection's handshake; nothing from the coordinator is trusted before
    /// its welcome proves the secret.
    private var handshake: ClientHandshake?
    private var authenticated: Bool { handshake?.welcomed ?? false }
    private var deliveryDeadline: Scheduled<Void>?
    private var currentTask: String?
    private var pending: [WireMessage] = []
    private var draining = false
    private var stopped = false
    private var backoff: TimeAmount = .milliseconds(500)
    private var heartbeat: RepeatedTask?
    private let finished: EventLoopPromise<Void>

    /// Loads every model (this takes a while for large ones) and prepares to connect.
    public init(configuration: WorkerConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        ComputeThreads.setThreadCount(configuration.threads)
        let catalogue = try ModelCatalogue(directories: configuration.models, logger: logger)
        runner = TaskRunner(models: catalogue.models, lowMemory: configuration.lowMemory)
        capabilities = NodeCapabilities(models: catalogue.capabilityKeys(precisions: configuration.precisions), threads: configuration.threads,
                                        host: ProcessInfo.processInfo.hostName, version: "ptp-\(WireProtocol.version)")
        finished = group.next().makePromise()
    }

    /// Connects and works until drained (SIGTERM/SIGINT) or refused for good (wrong secret or
    /// protocol version). Throws only in the second case.
    public func run() throws {
        let signals = ShutdownSignals { [weak self] in
            guard let self else { return }
            self.loop.execute { self.drain() }
        }
        defer { signals.cancel() }
        loop.execute { self.connect() }
        defer { try? group.syncShutdownGracefully() }
        try finished.futureResult.wait()
    }

    // MARK: - Connection

    private func connect() {
        guard !stopped else { return }
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [configuration] channel in
                channel.eventLoop.makeCompletedFuture {
                    let limits = ConnectionLimits.unauthenticated()
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: configuration.codec)),
                        MessageToByteHandler(WireMessageEncoder(codec: configuration.codec)),
                        WorkerConnectionHandler(node: self, limits: limits),
                    ])
                }
            }
        bootstrap.connect(host: configuration.host, port: configuration.port).whenComplete { result in
            switch result {
            case .success(let channel):
                self.channel = channel
                let handshake = ClientHandshake(secret: self.configuration.secret, role: .worker, nodeID: self.configuration.nodeID)
                self.handshake = handshake
                channel.writeAndFlush(handshake.hello(capabilities: (try? self.capabilities.jsonText()) ?? "{}"), promise: nil)
            case .failure(let error):
                self.logger.warning("cannot reach the coordinator", metadata: ["error": "\(error)", "retry in": "\(self.backoff.nanoseconds / 1_000_000) ms"])
                self.scheduleReconnect()
            }
        }
    }

    private func scheduleReconnect() {
        guard !stopped else { return }
        let delay = backoff
        backoff = .nanoseconds(min(backoff.nanoseconds * 2, configuration.maximumBackoff.nanoseconds))
        loop.scheduleTask(in: delay) { self.connect() }
    }

    fileprivate func received(_ message: WireMessage, on channel: Channel, limits: ConnectionLimits) {
        guard channel === self.channel, var handshake else { return }
        switch message {
        case .challenge(let nonce):
            do {
                channel.writeAndFlush(try handshake.answer(challenge: nonce), promise: nil)
                self.handshake = handshake
            } catch {
                abandon(channel, because: error)
            }
        case .welcome(let session, let proof):
            do { try handshake.accept(welcomeProof: proof) } catch {
                abandon(channel, because: error)
                return
            }
            self.handshake = handshake
            backoff = .milliseconds(500)
            deliveryDeadline?.cancel()
            limits.authenticated(tensorBytes: configuration.codec.limit)
            logger.info("joined the cluster", metadata: ["session": "\(session)", "models": "\(capabilities.models.count) keys"])
            for message in pending { channel.write(message, promise: nil) }
            pending.removeAll()
            channel.flush()
            heartbeat?.cancel()
            heartbeat = loop.scheduleRepeatedTask(initialDelay: configuration.heartbeatInterval, delay: configuration.heartbeatInterval) { _ in
                if self.authenticated { self.channel?.writeAndFlush(WireMessage.heartbeat(taskIDs: self.currentTask.map { [$0] } ?? []), promise: nil) }
            }
            if draining {
                // The results held while disconnected are delivered: nothing keeps this worker.
                if currentTask == nil { leave() }
            } else {
                askForWork()
            }
        case .assign(let taskID, let kind, let payload, let tensors):
            guard authenticated else {
                abandon(channel, because: WireError(.unexpectedMessage, "work offered before the coordinator proved the cluster secret"))
                return
            }
            start(taskID: taskID, kind: kind, payload: payload, tensors: tensors)
        case .error(let code, let reason):
            logger.error("the coordinator refused this worker", metadata: ["code": "\(code)", "reason": "\(reason)"])
            if code == WireError.Code.authenticationFailed.rawValue || code == WireError.Code.badVersion.rawValue {
                stop(error: WireError(WireError.Code(rawValue: code) ?? .rejected, reason))
            }
        case .goodbye(let reason):
            logger.info("the coordinator said goodbye", metadata: ["reason": "\(reason)"])
        default:
            logger.warning("unexpected message from the coordinator", metadata: ["message": "\(message.name)"])
        }
    }

    /// Drops a connection whose other end cannot be trusted; reconnects with backoff.
    private func abandon(_ channel: Channel, because error: Error) {
        logger.error("leaving the connection", metadata: ["reason": "\(error)"])
        channel.close(promise: nil)
    }

    fileprivate func disconnected(_ channel: Channel) {
        guard channel === self.channel else { return }
        handshake = nil
        self.channel = nil
        heartbeat?.cancel()
        heartbeat = nil
        if draining && currentTask == nil {
            if pending.isEmpty { stop(error: nil); return }
            startDeliveryDeadline()
        }
        logger.warning("lost the coordinator; reconnecting")
        scheduleReconnect()
    }

    /// A draining worker with a finished result and no coordinator: keep trying for a while,
    /// then leave (the coordinator runs the task again once its lease expires).
    private func startDeliveryDeadline() {
        guard deliveryDeadline == nil else { return }
        deliveryDeadline = loop.scheduleTask(in: configuration.drainDeliveryTimeout) {
            guard !self.stopped, !self.pending.isEmpty else { return }
            self.logger.warning("leaving without delivering results: the coordinator stayed unreachable",
                                metadata: ["results": "\(self.pending.count)", "waited s": "\(self.configuration.drainDeliveryTimeout.nanoseconds / 1_000_000_000)"])
            self.stop(error: nil)
        }
    }

    // MARK: - Work

    private func askForWork() {
        guard authenticated, currentTask == nil, !draining else { return }
        channel?.writeAndFlush(WireMessage.credit(slots: 1), promise: nil)
    }

    private func send(_ message: WireMessage) {
        if authenticated, let channel {
            channel.writeAndFlush(message, promise: nil)
        } else if case .progress = message {
            // Progress is not worth keeping for a later connection.
        } else {
            pending.append(message)
        }
    }

    private func start(taskID: String, kind: TaskKind, payload: String, tensors: [TensorPayload]) {
        guard currentTask == nil else {
            send(.failed(taskID: taskID, retryable: true, reason: "worker busy"))
            return
        }
        currentTask = taskID
        logger.info("task started", metadata: ["task": "\(taskID)", "kind": "\(kind)"])
        let runner = self.runner
        compute.async {
            let progress: (Int, Int) -> Void = { step, total in
                self.loop.execute { self.send(.progress(taskID: taskID, step: UInt32(step), total: UInt32(total))) }
            }
            let outcome: WireMessage
            do {
                let (resultPayload, resultTensors) = try runner.run(kind: kind, payload: payload, tensors: tensors, progress: progress)
                outcome = .result(taskID: taskID, payload: resultPayload, tensors: resultTensors)
            } catch let failure as TaskFailure {
                outcome = .failed(taskID: taskID, retryable: failure.retryable, reason: failure.reason)
            } catch {
                outcome = .failed(taskID: taskID, retryable: false, reason: "\(error)")
            }
            self.loop.execute { self.completed(taskID, outcome) }
        }
    }

    private func completed(_ taskID: String, _ outcome: WireMessage) {
        currentTask = nil
        if case .failed(_, _, let reason) = outcome {
            logger.warning("task failed", metadata: ["task": "\(taskID)", "reason": "\(reason)"])
        } else {
            logger.info("task done", metadata: ["task": "\(taskID)"])
        }
        send(outcome)
        if draining {
            if pending.isEmpty { leave() } else { startDeliveryDeadline() }
        } else {
            askForWork()
        }
    }

    /// SIGTERM: take no more work; finish the current task, deliver it, then leave.
    private func drain() {
        guard !draining else { return }
        draining = true
        logger.info("draining: finishing the current task, then leaving", metadata: ["task": "\(currentTask ?? "none")"])
        if currentTask == nil && pending.isEmpty { leave() }
    }

    private func leave() {
        guard let channel, authenticated else { stop(error: nil); return }
        channel.writeAndFlush(WireMessage.goodbye(reason: "drained")).whenComplete { _ in
            channel.close(promise: nil)
            self.stop(error: nil)
        }
    }

    private func stop(error: Error?) {
        guard !stopped else { return }
        stopped = true
        heartbeat?.cancel()
        channel?.close(promise: nil)
        if let error { finished.fail(error) } else { finished.succeed(()) }
    }
}

/// The worker's end of the connection: hands messages to the node, reports the close.
final class WorkerConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    let node: WorkerNode
    let limits: ConnectionLimits

    init(node: WorkerNode, limits: ConnectionLimits) {
        self.node = node
        self.limits = limits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        node.received(unwrapInboundIn(data), on: context.channel, limits: limits)
    }

    func channelInactive(context: ChannelHandlerContext) {
        node.disconnected(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        node.logger.warning("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
