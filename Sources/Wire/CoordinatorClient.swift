import Foundation
import NIOCore
import NIOPosix

/// A client's connection to the coordinator (`ptp submit`, `ptp status`, benchmarks and tests):
/// the handshake (`ClientHandshakeHandler`), then messages both ways, waited for on the
/// caller's thread. Failures are `ConnectionError`s, so that a caller can tell a closed
/// connection (worth a reconnection) from a refusal.
public final class CoordinatorClient: @unchecked Sendable {
    public let host: String
    public let port: Int
    public let credential: NodeCredential
    public let role: PeerRole
    public let nodeID: String
    /// NIO's process-wide group: never shut down, so the client may be released anywhere,
    /// including on its own event loop when the connection closes.
    private let group = MultiThreadedEventLoopGroup.singleton
    private var channel: Channel?
    private let lock = NSLock()
    private var inbox: [WireMessage] = []
    private var joined = false
    /// Why the connection ended, once it has.
    private var ended: ConnectionError?
    private let available = DispatchSemaphore(value: 0)

    public init(host: String, port: Int, credential: NodeCredential, role: PeerRole, nodeID: String? = nil) {
        (self.host, self.port, self.credential, self.role) = (host, port, credential, role)
        self.nodeID = nodeID ?? "\(role)-\(ProcessInfo.processInfo.hostName)-\(getpid())"
    }

    /// Connects and authenticates (within `timeout` seconds).
    public func connect(timeout: Double = 10) throws {
        lock.withLock { (inbox, joined, ended) = ([], false, nil) }
        let codec = TensorCodec()
        let handshake = ClientHandshake(secret: credential.secret, role: role, nodeID: nodeID)
        do {
            channel = try ClientBootstrap(group: group)
                .channelInitializer { [credential, host] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try credential.addTLS(to: channel, host: host)
                        // Clients receive no tensors, before the handshake or after.
                        let limits = ConnectionLimits.unauthenticated()
                        try channel.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: codec)),
                            MessageToByteHandler(WireMessageEncoder(codec: codec)),
                            ClientHandshakeHandler(handshake: handshake, limits: limits, tensorBytes: 0),
                            ClientInboundHandler(client: self),
                        ])
                    }
                }
                .connect(host: host, port: port).wait()
        } catch {
            throw ConnectionError.unreachable("\(host):\(port): \(error)")
        }
        let deadline = DispatchTime.now() + timeout
        while true {
            let (isJoined, failure) = lock.withLock { (joined, ended) }
            if isJoined { return }
            if let failure {
                close()
                throw failure
            }
            if available.wait(timeout: deadline) == .timedOut {
                close()
                throw ConnectionError.timedOut("welcome")
            }
        }
    }

    public func send(_ message: WireMessage) throws {
        guard let channel, lock.withLock({ joined && ended == nil }) else { throw ConnectionError.closed }
        do { try channel.writeAndFlush(message).wait() } catch { throw ConnectionError.closed }
    }

    /// The next message, waiting up to `timeout` seconds; nil on timeout; throws once the
    /// connection has ended and every message before its end was read.
    public func next(timeout: Double) throws -> WireMessage? {
        while true {
            let (message, failure): (WireMessage?, ConnectionError?) = lock.withLock {
                inbox.isEmpty ? (nil, ended) : (inbox.removeFirst(), nil)
            }
            if let message { return message }
            if let failure { throw failure }
            if available.wait(timeout: .now() + timeout) == .timedOut { return nil }
        }
    }

    public func close() { channel?.close(promise: nil) }

    /// Sends `message` and waits up to `timeout` seconds for the answer.
    public func request(_ message: WireMessage, timeout: Double = 30) throws -> WireMessage {
        try send(message)
        guard let answer = try next(timeout: timeout) else { throw ConnectionError.timedOut("answer to \(message.name)") }
        return answer
    }

    fileprivate func welcomed() {
        lock.withLock { joined = true }
        available.signal()
    }

    fileprivate func deliver(_ message: WireMessage) {
        lock.withLock { inbox.append(message) }
        available.signal()
    }

    fileprivate func end(_ error: ConnectionError) {
        lock.withLock { if ended == nil { ended = error } }
        available.signal()
    }
}

private final class ClientInboundHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    /// Weak: the client owns the channel, not the other way round.
    weak var client: CoordinatorClient?
    init(client: CoordinatorClient) { self.client = client }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ClientHandshakeHandler.Joined { client?.welcomed() } else { context.fireUserInboundEventTriggered(event) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { client?.deliver(unwrapInboundIn(data)) }

    func channelInactive(context: ChannelHandlerContext) {
        client?.end(.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A dropped TLS connection ends as `.closed`, which callers reconnect after.
        client?.end(ConnectionError(connecting: error, peerCertificate: TLSProblem.peerCertificate(on: context.channel)))
        context.close(promise: nil)
    }
}
