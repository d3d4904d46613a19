import NIOCore
import Wire

/// A peer that proved the cluster secret: who it is, and (a worker) what it runs. Sent up the
/// pipeline as a user event when the handshake finishes.
struct AuthenticatedPeer: Sendable {
    let role: PeerRole
    let nodeID: String
    let sessionID: String
    let capabilities: NodeCapabilities
}

/// The coordinator's side of the handshake: the protocol version, then the mutual HMAC
/// challenge, within a deadline. Nothing else is read before it finishes; once it has, the
/// connection's limits are raised (only workers send tensors), `AuthenticatedPeer` goes up the
/// pipeline and every later message passes through. Anything out of place is refused: an error
/// frame, a close, the reason logged; other connections are unaffected.
final class ServerHandshakeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    typealias InboundOut = WireMessage
    typealias OutboundOut = WireMessage

    enum State {
        case awaitingHello
        case awaitingProof(peerNonce: [UInt8], nonce: [UInt8], role: PeerRole, nodeID: String, capabilities: NodeCapabilities)
        case authenticated
        case closing
    }

    let secret: SharedSecret
    let limits: ConnectionLimits
    /// What an authenticated worker's messages may carry in tensors.
    let workerTensorBytes: Int
    let deadline: TimeAmount
    let refusal: Refusal
    private var state: State = .awaitingHello
    private static let sessions = SessionCounter()

    init(secret: SharedSecret, limits: ConnectionLimits, workerTensorBytes: Int, deadline: TimeAmount = .seconds(10), refusal: Refusal) {
        (self.secret, self.limits, self.workerTensorBytes, self.deadline, self.refusal) = (secret, limits, workerTensorBytes, deadline, refusal)
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        context.eventLoop.scheduleTask(in: deadline) { [weak self] in
            guard let self else { return }
            switch self.state {
            case .awaitingHello, .awaitingProof:
                self.refuse(channel, WireError(.authenticationFailed, "no handshake within \(self.deadline.nanoseconds / 1_000_000_000) s"))
            case .authenticated, .closing:
                break
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        switch (state, message) {
        case (.authenticated, _):
            context.fireChannelRead(data)
        case (.closing, _):
            break
        case (.awaitingHello, .hello(let version, let role, let nodeID, let capabilities, let peerNonce)):
            guard version == WireProtocol.version else {
                return refuse(context.channel, WireError(.badVersion, "protocol version \(version); this coordinator speaks \(WireProtocol.version)"))
            }
            guard peerNonce.count >= 16 else {
                return refuse(context.channel, WireError(.malformed, "hello: a nonce of \(peerNonce.count) bytes; at least 16 are needed"))
            }
            let nonce = SharedSecret.nonce()
            state = .awaitingProof(peerNonce: peerNonce, nonce: nonce, role: role, nodeID: nodeID, capabilities: capabilities)
            context.writeAndFlush(wrapOutboundOut(.challenge(nonce: nonce)), promise: nil)
        case (.awaitingProof(let peerNonce, let nonce, let role, let nodeID, let capabilities), .proof(let mac)):
            guard secret.verify(mac, by: .peer, version: WireProtocol.version, role: role, nodeID: nodeID,
                                peerNonce: peerNonce, coordinatorNonce: nonce) else {
                return refuse(context.channel, WireError(.authenticationFailed, "wrong cluster secret (node '\(nodeID)')"))
            }
            let sessionID = "\(nodeID)#\(Self.sessions.next())"
            state = .authenticated
            limits.authenticated(tensorBytes: role == .worker ? workerTensorBytes : 0)
            let proof = secret.proof(by: .coordinator, version: WireProtocol.version, role: role, nodeID: nodeID,
                                     peerNonce: peerNonce, coordinatorNonce: nonce)
            context.writeAndFlush(wrapOutboundOut(.welcome(sessionID: sessionID, proof: proof)), promise: nil)
            context.fireUserInboundEventTriggered(AuthenticatedPeer(role: role, nodeID: nodeID, sessionID: sessionID, capabilities: capabilities))
        default:
            refuse(context.channel, WireError(.unexpectedMessage, "'\(message.name)' before the handshake finished"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch state {
        case .authenticated: context.fireErrorCaught(error)
        case .closing: break
        case .awaitingHello, .awaitingProof: refuse(context.channel, WireError(refusing: error))
        }
    }

    private func refuse(_ channel: Channel, _ error: WireError) {
        if case .closing = state { return }
        state = .closing
        refusal.refuse(channel, error)
    }
}
