import Foundation
import Logging
import NIOCore
import Wire

/// One connection to the coordinator: the handshake (version, then the mutual HMAC challenge),
/// then the messages of its role passed to the scheduler. Anything out of place is answered with an
/// error frame and a close, with the reason logged; other connections are unaffected.
final class PeerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    typealias OutboundOut = WireMessage

    enum State {
        case awaitingHello
        case awaitingProof(peerNonce: [UInt8], nonce: [UInt8], role: PeerRole, nodeID: String, capabilities: String)
        case authenticated(role: PeerRole, nodeID: String, sessionID: String)
        case closing
    }

    let scheduler: SchedulerShell
    let secret: SharedSecret
    let limits: ConnectionLimits
    let codec: TensorCodec
    let metrics: CoordinatorMetrics
    var logger: Logger
    private var state: State = .awaitingHello
    /// The worker session this connection signed in, whatever its state now: however the
    /// connection ends (goodbye, refusal, reset), its close is the one place the worker leaves.
    private var workerSession: String?
    private static let sessions = SessionCounter()

    init(scheduler: SchedulerShell, secret: SharedSecret, limits: ConnectionLimits, codec: TensorCodec, metrics: CoordinatorMetrics, logger: Logger) {
        (self.scheduler, self.secret, self.limits, self.codec, self.metrics, self.logger) = (scheduler, secret, limits, codec, metrics, logger)
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        // The handshake must finish promptly.
        let channel = context.channel
        context.eventLoop.scheduleTask(in: .seconds(10)) { [weak self] in
            guard let self, case .authenticated = self.state else {
                self?.refuse(channel, WireError(.authenticationFailed, "no handshake within 10 s"))
                return
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        switch (state, message) {
        case (.awaitingHello, .hello(let version, let role, let nodeID, let capabilities, let peerNonce)):
            guard version == WireProtocol.version else {
                refuse(context.channel, WireError(.badVersion, "protocol version \(version); this coordinator speaks \(WireProtocol.version)"))
                return
            }
            guard peerNonce.count >= 16 else {
                refuse(context.channel, WireError(.malformed, "hello: a nonce of \(peerNonce.count) bytes; at least 16 are needed"))
                return
            }
            let nonce = SharedSecret.nonce()
            state = .awaitingProof(peerNonce: peerNonce, nonce: nonce, role: role, nodeID: nodeID, capabilities: capabilities)
            context.writeAndFlush(wrapOutboundOut(.challenge(nonce: nonce)), promise: nil)
        case (.awaitingProof(let peerNonce, let nonce, let role, let nodeID, let capabilities), .proof(let mac)):
            guard secret.verify(mac, by: .peer, version: WireProtocol.version, role: role, nodeID: nodeID,
                                peerNonce: peerNonce, coordinatorNonce: nonce) else {
                refuse(context.channel, WireError(.authenticationFailed, "wrong cluster secret (node '\(nodeID)')"))
                return
            }
            let sessionID = "\(nodeID)#\(Self.sessions.next())"
            if role == .worker {
                guard let caps = try? NodeCapabilities.fromJSON(capabilities, what: "capabilities") else {
                    refuse(context.channel, WireError(.malformed, "worker capabilities are not valid JSON"))
                    return
                }
                let host = context.remoteAddress?.ipAddress ?? caps.host
                workerSession = sessionID
                scheduler.workerJoined(sessionID: sessionID, nodeID: nodeID, host: "\(caps.host) (\(host))",
                                       models: Set(caps.models), channel: context.channel)
            }
            state = .authenticated(role: role, nodeID: nodeID, sessionID: sessionID)
            // Only workers send tensors (their results).
            limits.authenticated(tensorBytes: role == .worker ? codec.limit : 0)
            logger[metadataKey: "node"] = "\(nodeID)"
            logger.info("authenticated", metadata: ["role": "\(role)"])
            let proof = secret.proof(by: .coordinator, version: WireProtocol.version, role: role, nodeID: nodeID,
                                     peerNonce: peerNonce, coordinatorNonce: nonce)
            context.writeAndFlush(wrapOutboundOut(.welcome(sessionID: sessionID, proof: proof)), promise: nil)
        case (.authenticated(let role, _, let sessionID), _):
            handle(message, role: role, sessionID: sessionID, context: context)
        case (.closing, _):
            break
        default:
            refuse(context.channel, WireError(.unexpectedMessage, "'\(message.name)' before the handshake finished"))
        }
    }

    private func handle(_ message: WireMessage, role: PeerRole, sessionID: String, context: ChannelHandlerContext) {
        switch (role, message) {
        case (.worker, .credit(let slots)):
            scheduler.run { $0.credit(sessionID, slots: Int(slots)) }
        case (.worker, .heartbeat(let ids)):
            scheduler.run { $0.heartbeat(sessionID, taskIDs: ids) }
        case (.worker, .progress(let taskID, let step, let total)):
            scheduler.run { $0.progress(sessionID, taskID: taskID, step: Int(step), total: Int(total)) }
        case (.worker, .result(let taskID, let payload, let tensors)):
            scheduler.run { $0.result(sessionID, taskID: taskID, payload: payload, tensors: tensors) }
        case (.worker, .failed(let taskID, let retryable, let reason)):
            scheduler.run { $0.failed(sessionID, taskID: taskID, retryable: retryable, reason: reason) }
        case (_, .goodbye(let reason)):
            if role == .worker { scheduler.run { $0.draining(sessionID) } }
            logger.info("peer said goodbye", metadata: ["reason": "\(reason)"])
            context.close(promise: nil)
        case (.client, .submit(let output, let edits)):
            do {
                let (jobID, count) = try scheduler.submit(editsJSON: edits, output: output)
                context.writeAndFlush(wrapOutboundOut(.accepted(jobID: jobID, edits: UInt32(count))), promise: nil)
            } catch {
                logger.warning("submission refused", metadata: ["reason": "\(error)"])
                context.writeAndFlush(wrapOutboundOut(.error(code: WireError.Code.rejected.rawValue, reason: "\(error)")), promise: nil)
            }
        case (.client, .watch(let jobID)), (.monitor, .watch(let jobID)):
            if !scheduler.watch(jobID, channel: context.channel) {
                context.writeAndFlush(wrapOutboundOut(.error(code: WireError.Code.rejected.rawValue, reason: "no job '\(jobID)'")), promise: nil)
            }
        case (_, .statusRequest):
            let report = (try? scheduler.core.status().jsonText()) ?? "{}"
            context.writeAndFlush(wrapOutboundOut(.statusReport(report: report)), promise: nil)
        default:
            refuse(context.channel, WireError(.unexpectedMessage, "'\(message.name)' is not a message a \(role) sends"))
        }
    }

    /// Answers with an error frame, closes, and logs why.
    private func refuse(_ channel: Channel, _ error: WireError) {
        if case .closing = state { return }
        state = .closing
        metrics.rejectedConnections.increment()
        logger.warning("connection refused", metadata: ["reason": "\(error.reason)", "code": "\(error.code)"])
        channel.writeAndFlush(WireMessage.error(code: error.code.rawValue, reason: error.reason)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let workerSession {
            let refused = if case .closing = state { true } else { false }
            scheduler.workerLeft(workerSession, reason: refused ? "connection refused" : "connection closed")
            self.workerSession = nil
        }
        state = .closing
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let wireError = (error as? WireError) ?? (error as? ByteToMessageDecoderError).map { _ in WireError(.malformed, "\(error)") }
            ?? WireError(.internalError, "\(error)")
        refuse(context.channel, wireError)
    }
}

/// Numbers sessions across connections (all on one event loop).
final class SessionCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
