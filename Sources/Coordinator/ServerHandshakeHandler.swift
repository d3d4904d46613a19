import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Wire

/// A peer that proved its role: who it is, and (a worker) what it runs. Sent up the pipeline as
/// a user event when the handshake finishes.
struct AuthenticatedPeer: Sendable {
    let role: PeerRole
    let nodeID: String
    let sessionID: String
    let capabilities: NodeCapabilities
    /// Whose limits its submissions count against: the name in its certificate under mutual
    /// TLS, else the address it connects from (a node id is the peer's to choose).
    let client: String
}

/// The coordinator's side of the handshake: the protocol version, then the mutual HMAC
/// challenge with the secret of the role the peer claims (or, under mutual TLS, a verified
/// certificate naming that role), within a deadline. Nothing else is read before it finishes; once it has, the
/// connection's limits are raised (only workers send tensors), `AuthenticatedPeer` goes up the
/// pipeline and every later message passes through. Anything out of place is refused: an error
/// frame, a close, the reason logged; other connections are unaffected.
final class ServerHandshakeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    typealias InboundOut = WireMessage
    typealias OutboundOut = WireMessage

    enum State {
        case awaitingHello
        /// `identity`: the peer's verified certificate, read once at the hello.
        case awaitingProof(peerNonce: [UInt8], nonce: [UInt8], role: PeerRole, nodeID: String, capabilities: NodeCapabilities,
                           identity: CertificateIdentity?)
        case authenticated
        case closing
    }

    let credentials: RoleCredentials
    let limits: ConnectionLimits
    /// What an authenticated worker's messages may carry in tensors.
    let workerTensorBytes: Int
    let deadline: TimeAmount
    let refusal: Refusal
    let logger: Logger
    private var state: State = .awaitingHello
    /// The TLS handshake finished (its certificate, if any, verified).
    private var tlsEstablished = false
    private static let sessions = SessionCounter()

    init(credentials: RoleCredentials, limits: ConnectionLimits, workerTensorBytes: Int, deadline: TimeAmount = .seconds(10), refusal: Refusal,
         logger: Logger) {
        (self.credentials, self.limits, self.workerTensorBytes, self.deadline, self.refusal) = (credentials, limits, workerTensorBytes, deadline, refusal)
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent { tlsEstablished = true }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A TLS peer that leaves before saying hello most often did not accept this
        // coordinator's certificate after the handshake (its name, checked last).
        if case .awaitingHello = state, tlsEstablished {
            logger.warning("a peer closed the connection right after TLS, before the handshake: it may not accept this coordinator's certificate (is the address it connects to among the certificate's names?)",
                           metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        }
        context.fireChannelInactive()
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
            let identity = CertificateIdentity.of(context.channel)
            if let identity, let certified = identity.role, !identity.grants(role) {
                return refuse(context.channel, WireError(.forbidden, "the certificate of '\(nodeID)' is a \(Self.name(certified)) credential; "
                                                         + "it cannot sign in as a \(Self.name(role))"))
            }
            guard identity?.grants(role) == true || !credentials.secrets(for: role).isEmpty else {
                return refuse(context.channel, WireError(.forbidden, "this coordinator signs in no \(Self.name(role)) by secret; "
                                                         + "present a certificate naming the role (OU=\(Self.name(role))) under mutual TLS"))
            }
            let nonce = SharedSecret.nonce()
            state = .awaitingProof(peerNonce: peerNonce, nonce: nonce, role: role, nodeID: nodeID, capabilities: capabilities, identity: identity)
            context.writeAndFlush(wrapOutboundOut(.challenge(nonce: nonce)), promise: nil)
        case (.awaitingProof(let peerNonce, let nonce, let role, let nodeID, let capabilities, let identity), .proof(let mac)):
            // The secret the peer proved, if any; a certificate naming the role is enough alone.
            let proven = credentials.secrets(for: role).first {
                $0.verify(mac, by: .peer, version: WireProtocol.version, role: role, nodeID: nodeID, peerNonce: peerNonce, coordinatorNonce: nonce)
            }
            guard proven != nil || identity?.grants(role) == true else {
                // One secret for every role is the cluster's secret; with roles apart, say which one.
                let reason = credentials.isOneSharedSecret
                    ? "wrong cluster secret (node '\(nodeID)')"
                    : "wrong \(Self.name(role)) secret (node '\(nodeID)'); a \(Self.name(role)) signs in with the secret of the coordinator's \(Self.flag(role))"
                return refuse(context.channel, WireError(.authenticationFailed, reason))
            }
            let sessionID = "\(nodeID)#\(Self.sessions.next())"
            state = .authenticated
            limits.authenticated(tensorBytes: role == .worker ? workerTensorBytes : 0)
            let proof = proven?.proof(by: .coordinator, version: WireProtocol.version, role: role, nodeID: nodeID,
                                      peerNonce: peerNonce, coordinatorNonce: nonce) ?? []
            context.writeAndFlush(wrapOutboundOut(.welcome(sessionID: sessionID, proof: proof)), promise: nil)
            let client = identity.map { "certificate \($0.name)" } ?? context.remoteAddress?.ipAddress ?? nodeID
            context.fireUserInboundEventTriggered(AuthenticatedPeer(role: role, nodeID: nodeID, sessionID: sessionID, capabilities: capabilities,
                                                                    client: client))
        default:
            refuse(context.channel, WireError(.unexpectedMessage, "'\(message.name)' before the handshake finished"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch state {
        case .authenticated: context.fireErrorCaught(error)
        case .closing: break
        case .awaitingHello, .awaitingProof:
            // A peer that went away during TLS's handshake (a port scan, a client stopped) only left.
            if TLSProblem.isDisconnection(error) {
                state = .closing
                logger.info("a peer left during the TLS handshake", metadata: ["peer": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
                return context.close(promise: nil)
            }
            if let reason = TLSProblem.reason(error, side: .coordinator, peerCertificate: TLSProblem.peerCertificate(on: context.channel)) {
                refuse(context.channel, WireError(.tlsMismatch, reason))
            } else {
                refuse(context.channel, WireError(refusing: error))
            }
        }
    }

    /// A role as users name it (the status role is `ptp status`'s read-only credential).
    static func name(_ role: PeerRole) -> String { role == .monitor ? "status" : "\(role)" }

    /// The coordinator option whose secret signs `role` in.
    static func flag(_ role: PeerRole) -> String {
        switch role {
        case .worker: return "--worker-secret-file (or --secret-file)"
        case .client: return "--client-secret-file (or --secret-file)"
        case .monitor: return "--status-secret-file or --client-secret-file (or --secret-file)"
        }
    }

    private func refuse(_ channel: Channel, _ error: WireError) {
        if case .closing = state { return }
        state = .closing
        refusal.refuse(channel, error)
    }
}
