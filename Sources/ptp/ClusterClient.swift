import Foundation
import NIOCore
import NIOPosix
import Wire

/// A client's connection to the coordinator (for `ptp submit` and `ptp status`): the
/// handshake, then messages in both directions.
final class ClusterClient: @unchecked Sendable {
    let host: String
    let port: Int
    let secret: SharedSecret
    let role: PeerRole
    let nodeID: String
    /// NIO's process-wide group: never shut down, so the client may be released anywhere,
    /// including on its own event loop when the connection closes.
    private let group = MultiThreadedEventLoopGroup.singleton
    private var channel: Channel?
    private let lock = NSLock()
    private var inbox: [WireMessage] = []
    private let available = DispatchSemaphore(value: 0)
    private var closed = false

    init(address: String, secret: SharedSecret, role: PeerRole) throws {
        (host, port) = try Self.parse(address)
        self.secret = secret
        self.role = role
        nodeID = "\(role)-\(ProcessInfo.processInfo.hostName)-\(getpid())"
    }

    static func parse(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), port > 0, port < 65536 else {
            throw CommandError("--coordinator: '\(address)' is not HOST:PORT")
        }
        return (String(address[..<colon]), port)
    }

    /// Connects and authenticates; throws with the coordinator's reason if refused.
    func connect() throws {
        lock.withLock { inbox.removeAll(); closed = false }
        let codec = TensorCodec()
        let channel = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        // Clients receive no tensors, before the handshake or after.
                        ByteToMessageHandler(WireMessageDecoder(limits: ConnectionLimits(frameBytes: WireProtocol.defaultFrameLimit, tensorBytes: 0),
                                                                codec: codec)),
                        MessageToByteHandler(WireMessageEncoder(codec: codec)),
                        ClientInboundHandler(client: self),
                    ])
                }
            }
            .connect(host: host, port: port).wait()
        self.channel = channel
        var handshake = ClientHandshake(secret: secret, role: role, nodeID: nodeID)
        try channel.writeAndFlush(handshake.hello(capabilities: "{}")).wait()
        switch try next(timeout: 10) {
        case .challenge(let nonce)?: try channel.writeAndFlush(try handshake.answer(challenge: nonce)).wait()
        case .error(_, let reason)?: throw CommandError("the coordinator refused the connection: \(reason)")
        default: throw CommandError("the coordinator did not send a challenge")
        }
        switch try next(timeout: 10) {
        case .welcome(_, let proof)?:
            do { try handshake.accept(welcomeProof: proof) } catch {
                close()
                throw CommandError("\(error)")
            }
        case .error(_, let reason)?: throw CommandError("the coordinator refused the connection: \(reason)")
        default: throw CommandError("unexpected answer to the handshake")
        }
    }

    func send(_ message: WireMessage) throws {
        guard let channel else { throw CommandError("not connected") }
        try channel.writeAndFlush(message).wait()
    }

    /// The next message, waiting up to `timeout` seconds; nil on timeout; throws if the
    /// connection closed.
    func next(timeout: Double) throws -> WireMessage? {
        while true {
            if let message: WireMessage = lock.withLock({ inbox.isEmpty ? nil : inbox.removeFirst() }) { return message }
            if lock.withLock({ closed }) { throw CommandError("the connection to the coordinator closed") }
            if available.wait(timeout: .now() + timeout) == .timedOut { return nil }
        }
    }

    func close() { channel?.close(promise: nil) }

    fileprivate func deliver(_ message: WireMessage) {
        lock.withLock { inbox.append(message) }
        available.signal()
    }

    fileprivate func disconnected() {
        lock.withLock { closed = true }
        available.signal()
    }
}

private final class ClientInboundHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    /// Weak: the client owns the channel, not the other way round.
    weak var client: ClusterClient?
    init(client: ClusterClient) { self.client = client }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { client?.deliver(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) {
        client?.disconnected()
        context.fireChannelInactive()
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
