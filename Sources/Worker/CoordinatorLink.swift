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
    /// The connection dropped; the link is reconnecting.
    func linkLost()
    /// The coordinator refused this worker for good, or is not one this worker can talk to
    /// (wrong credential or protocol version, TLS on one side only, an untrusted certificate,
    /// a web server at the address).
    func linkRefused(_ error: ConnectionError)
}

/// The worker's link to the coordinator, put together from parts that each do one thing: the
/// `Reconnector` keeps a connection open, each connection's pipeline runs the handshake
/// (`ClientHandshakeHandler`), its heartbeats (`HeartbeatHandler`) and hands the coordinator's
/// messages here (`CoordinatorLinkHandler`), and the `Outbox` holds what is sent while no
/// connection is open. Confined to `loop`.
final class CoordinatorLink: @unchecked Sendable {
    let loop: EventLoop
    let logger: Logger
    weak var delegate: CoordinatorLinkDelegate?
    let outbox = Outbox()
    private var reconnector: Reconnector?
    private var closed = false

    /// Connections come from `connect`, given the link handler to end their pipelines with.
    init(loop: EventLoop, maximumBackoff: TimeAmount, logger: Logger, connect: @escaping (CoordinatorLinkHandler) -> EventLoopFuture<Channel>) {
        self.loop = loop
        self.logger = logger
        reconnector = Reconnector(loop: loop, maximumBackoff: maximumBackoff, logger: logger) { [unowned self] in
            connect(CoordinatorLinkHandler(link: self))
        }
    }

    /// A link over TCP to the configured coordinator.
    convenience init(configuration: WorkerConfiguration, capabilities: NodeCapabilities, running: @escaping @Sendable () -> [String],
                     loop: EventLoop, logger: Logger) {
        self.init(loop: loop, maximumBackoff: configuration.maximumBackoff, logger: logger) { handler in
            ClientBootstrap(group: loop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try configuration.credential.addTLS(to: channel, host: configuration.host)
                        let limits = ConnectionLimits.unauthenticated()
                        let handshake = ClientHandshake(secret: configuration.credential.secret, role: .worker, nodeID: configuration.nodeID)
                        try channel.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: configuration.codec)),
                            MessageToByteHandler(WireMessageEncoder(codec: configuration.codec)),
                            ClientHandshakeHandler(handshake: handshake, capabilities: capabilities, limits: limits, tensorBytes: configuration.codec.limit),
                            HeartbeatHandler(interval: configuration.heartbeatInterval, running: running),
                            handler,
                        ])
                    }
                }
                .connect(host: configuration.host, port: configuration.port)
        }
    }

    var isJoined: Bool { outbox.isOpen }

    func connect() { reconnector?.start() }

    /// Sends now when joined, else when next joined (`Outbox`).
    func send(_ message: WireMessage) { outbox.send(message) }

    /// Says goodbye and closes for good; `done` runs once the goodbye is written (at once when
    /// not joined).
    func leave(_ done: @escaping @Sendable () -> Void) {
        guard let channel = reconnector?.channel, isJoined else { return done() }
        closed = true
        channel.writeAndFlush(WireMessage.goodbye(reason: "drained")).whenComplete { _ in
            // Closes the connection, and cancels a reconnection its close may have scheduled.
            self.reconnector?.stop()
            done()
        }
    }

    /// Closes for good: no reconnection.
    func close() {
        closed = true
        reconnector?.stop()
    }

    fileprivate func joined(on channel: Channel, session: String) {
        reconnector?.resetBackoff()
        outbox.opened(channel)
        logger.info("joined the cluster", metadata: ["session": "\(session)"])
        delegate?.linkJoined()
    }

    fileprivate func disconnected(wasJoined: Bool) {
        outbox.closed()
        guard !closed else { return }
        if wasJoined { logger.warning("lost the coordinator; reconnecting") }
        delegate?.linkLost()
    }

    fileprivate func failed(_ error: ConnectionError) {
        logger.error("the connection failed", metadata: ["reason": "\(error)"])
        if error.isPermanent { delegate?.linkRefused(error) }
    }

    fileprivate func received(_ message: WireMessage) {
        switch message {
        case .assign(let taskID, let work):
            delegate?.linkAssigned(taskID: taskID, work: work)
        case .error(let code, let reason):
            logger.error("the coordinator reported an error", metadata: ["code": "\(code)", "reason": "\(reason)"])
        case .goodbye(let reason):
            logger.info("the coordinator said goodbye", metadata: ["reason": "\(reason)"])
        default:
            logger.warning("unexpected message from the coordinator", metadata: ["message": "\(message.name)"])
        }
    }
}

/// The end of a link connection's pipeline: the coordinator's messages once it is welcomed,
/// and how the connection ended, handed to the link.
final class CoordinatorLinkHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    private unowned let link: CoordinatorLink
    private var joined = false

    init(link: CoordinatorLink) { self.link = link }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let welcome = event as? ClientHandshakeHandler.Joined else { return context.fireUserInboundEventTriggered(event) }
        joined = true
        link.joined(on: context.channel, session: welcome.sessionID)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.received(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.disconnected(wasJoined: joined)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? ConnectionError {
            link.failed(error)
        } else {
            link.logger.warning("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }
}
