import Foundation
import Logging
import NIOCore
import NIOPosix
import Wire

/// What the worker hears from its link to the coordinator (always on the link's event loop).
protocol CoordinatorLinkDelegate: AnyObject {
    /// The coordinator proved the secret and welcomed this worker (again, after a reconnection).
    func linkJoined()
    /// Work handed to this worker.
    func linkAssigned(taskID: String, work: TaskWork)
    /// The assignment could not be read (the task fails; the connection stays).
    func linkAssignmentUnreadable(taskID: String, error: Error)
    /// The connection dropped; the link is reconnecting.
    func linkLost()
    /// The coordinator refused this worker for good (wrong secret or protocol version).
    func linkRefused(_ error: WireError)
}

/// The worker's connection to the coordinator: connects and reconnects with backoff, runs
/// the client side of the handshake (nothing from the coordinator is trusted before its
/// welcome proves the secret), sends heartbeats, and keeps results sent while disconnected
/// for the next connection. Confined to `loop`.
final class CoordinatorLink: @unchecked Sendable {
    let configuration: WorkerConfiguration
    let capabilities: NodeCapabilities
    let loop: EventLoop
    let logger: Logger
    weak var delegate: CoordinatorLinkDelegate?
    /// The tasks a heartbeat names (the one running, if any).
    var runningTasks: () -> [String] = { [] }

    private var channel: Channel?
    private var handshake: ClientHandshake?
    private var backoff: TimeAmount = .milliseconds(500)
    private var heartbeat: RepeatedTask?
    private var closed = false
    /// Messages that wait for a connection: results and failures are never dropped.
    private(set) var undelivered: [WireMessage] = []

    var isJoined: Bool { handshake?.welcomed ?? false }

    init(configuration: WorkerConfiguration, capabilities: NodeCapabilities, loop: EventLoop, logger: Logger) {
        (self.configuration, self.capabilities, self.loop, self.logger) = (configuration, capabilities, loop, logger)
    }

    func connect() {
        guard !closed else { return }
        let bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [configuration] channel in
                channel.eventLoop.makeCompletedFuture {
                    let limits = ConnectionLimits.unauthenticated()
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: configuration.codec)),
                        MessageToByteHandler(WireMessageEncoder(codec: configuration.codec)),
                        CoordinatorLinkHandler(link: self, limits: limits),
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

    /// Sends now when joined; otherwise keeps the message for the next connection (progress
    /// is not worth keeping).
    func send(_ message: WireMessage) {
        if isJoined, let channel {
            channel.writeAndFlush(message, promise: nil)
        } else if case .progress = message {
            return
        } else {
            undelivered.append(message)
        }
    }

    /// Says goodbye and closes; `done` runs once the goodbye is written (or at once when not
    /// joined).
    func leave(_ done: @escaping () -> Void) {
        guard let channel, isJoined else { done(); return }
        channel.writeAndFlush(WireMessage.goodbye(reason: "drained")).whenComplete { _ in
            channel.close(promise: nil)
            done()
        }
    }

    /// Closes for good: no reconnection.
    func close() {
        closed = true
        heartbeat?.cancel()
        channel?.close(promise: nil)
    }

    private func scheduleReconnect() {
        guard !closed else { return }
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
            limits.authenticated(tensorBytes: configuration.codec.limit)
            logger.info("joined the cluster", metadata: ["session": "\(session)", "models": "\(capabilities.models.count) keys"])
            for message in undelivered { channel.write(message, promise: nil) }
            undelivered.removeAll()
            channel.flush()
            heartbeat?.cancel()
            heartbeat = loop.scheduleRepeatedTask(initialDelay: configuration.heartbeatInterval, delay: configuration.heartbeatInterval) { _ in
                if self.isJoined { self.channel?.writeAndFlush(WireMessage.heartbeat(taskIDs: self.runningTasks()), promise: nil) }
            }
            delegate?.linkJoined()
        case .assign(let taskID, let kind, let payload, let tensors):
            guard isJoined else {
                abandon(channel, because: WireError(.unexpectedMessage, "work offered before the coordinator proved the cluster secret"))
                return
            }
            do {
                delegate?.linkAssigned(taskID: taskID, work: try TaskWork(kind: kind, payload: payload, tensors: tensors))
            } catch {
                delegate?.linkAssignmentUnreadable(taskID: taskID, error: error)
            }
        case .error(let code, let reason):
            logger.error("the coordinator refused this worker", metadata: ["code": "\(code)", "reason": "\(reason)"])
            if code == WireError.Code.authenticationFailed.rawValue || code == WireError.Code.badVersion.rawValue {
                delegate?.linkRefused(WireError(WireError.Code(rawValue: code) ?? .rejected, reason))
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
        guard !closed else { return }
        delegate?.linkLost()
        guard !closed else { return }
        logger.warning("lost the coordinator; reconnecting")
        scheduleReconnect()
    }
}

/// The link's channel handler: hands messages to the link, reports the close.
final class CoordinatorLinkHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    let link: CoordinatorLink
    let limits: ConnectionLimits

    init(link: CoordinatorLink, limits: ConnectionLimits) {
        self.link = link
        self.limits = limits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.received(unwrapInboundIn(data), on: context.channel, limits: limits)
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.disconnected(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        link.logger.warning("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
