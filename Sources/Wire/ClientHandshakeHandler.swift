import NIOCore
import NIOSSL
import NIOTLS

/// The connecting side's handshake as a channel handler (workers, `ptp submit`, `ptp status`):
/// the hello as the connection opens, the proof in answer to the challenge, then the
/// coordinator's own proof checked in its welcome. Until then nothing from the other side is
/// trusted or passed on; once welcomed, the connection's limits are raised, `Joined` goes up
/// the pipeline and every later message passes through. A refusal, or a coordinator that
/// cannot prove the secret, fails the connection with a `ConnectionError` and closes it.
public final class ClientHandshakeHandler: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = WireMessage
    public typealias InboundOut = WireMessage
    public typealias OutboundOut = WireMessage

    /// The user event of a finished handshake.
    public struct Joined: Sendable, Equatable {
        public let sessionID: String
        public init(sessionID: String) { self.sessionID = sessionID }
    }

    private var handshake: ClientHandshake
    private let capabilities: NodeCapabilities
    private let limits: ConnectionLimits
    private let tensorBytes: Int
    private var failed = false

    /// `tensorBytes`: what the coordinator's messages may carry in tensors once it is proven.
    public init(handshake: ClientHandshake, capabilities: NodeCapabilities = NodeCapabilities(), limits: ConnectionLimits, tensorBytes: Int) {
        (self.handshake, self.capabilities, self.limits, self.tensorBytes) = (handshake, capabilities, limits, tensorBytes)
    }

    public func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(handshake.hello(capabilities: capabilities)), promise: nil)
        context.fireChannelActive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // TLS verified the coordinator's certificate (workers and clients always verify it).
        // A certificate naming a role is a peer's credential, not a coordinator's: a worker
        // cannot pose as the coordinator with its own certificate.
        if case .handshakeCompleted = event as? TLSUserEvent {
            if let identity = CertificateIdentity.of(context.channel), identity.namesARole {
                let kind = identity.role.map { $0 == .monitor ? "a status" : "a \($0)" } ?? "a peer's"
                return fail(context, .misconfigured("the server presented \(kind) certificate (its OU names a role), not a coordinator's: "
                                                    + "not our coordinator, or its --tls-cert is a peer's certificate"))
            }
            handshake.coordinatorVerified = true
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !handshake.welcomed else { return context.fireChannelRead(data) }
        guard !failed else { return }
        switch unwrapInboundIn(data) {
        case .challenge(let nonce):
            do { context.writeAndFlush(wrapOutboundOut(try handshake.answer(challenge: nonce)), promise: nil) } catch {
                fail(context, .untrusted("\(error)"))
            }
        case .welcome(let sessionID, let proof):
            do { try handshake.accept(welcomeProof: proof) } catch let error as WireError {
                return fail(context, .untrusted(error.reason))
            } catch {
                return fail(context, .untrusted("\(error)"))
            }
            limits.authenticated(tensorBytes: tensorBytes)
            context.fireUserInboundEventTriggered(Joined(sessionID: sessionID))
        case .error(let code, let reason):
            fail(context, .refused(WireError(WireError.Code(rawValue: code) ?? .rejected, reason)))
        case let other:
            fail(context, .untrusted("the coordinator sent '\(other.name)' before proving the cluster secret"))
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !handshake.welcomed, !failed else { return context.fireErrorCaught(error) }
        fail(context, ConnectionError(connecting: error, peerCertificate: TLSProblem.peerCertificate(on: context.channel)))
    }

    private func fail(_ context: ChannelHandlerContext, _ error: ConnectionError) {
        failed = true
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
