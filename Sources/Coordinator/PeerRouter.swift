import Foundation
import Logging
import NIOCore
import Wire

/// A signed-in peer's messages, routed by its role to the broker's shell: a worker's credits,
/// heartbeats, progress, results and failures; a client's jobs and watches; anyone's status
/// requests. However the connection ends (goodbye, refusal, reset), its close is the one place
/// a worker leaves the cluster.
final class PeerRouter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    typealias OutboundOut = WireMessage

    let shell: BrokerShell
    let refusal: Refusal
    let outputRoot: OutputRoot?
    var logger: Logger
    private var peer: AuthenticatedPeer?
    /// The worker session this connection signed in.
    private var workerSession: String?
    private var refused = false

    init(shell: BrokerShell, refusal: Refusal, outputRoot: OutputRoot? = nil, logger: Logger) {
        (self.shell, self.refusal, self.outputRoot, self.logger) = (shell, refusal, outputRoot, logger)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let peer = event as? AuthenticatedPeer else { return context.fireUserInboundEventTriggered(event) }
        self.peer = peer
        logger[metadataKey: "node"] = "\(peer.nodeID)"
        logger.info("authenticated", metadata: ["role": "\(peer.role)"])
        if peer.role == .worker {
            workerSession = peer.sessionID
            let address = context.remoteAddress?.ipAddress ?? peer.capabilities.host
            shell.workerJoined(sessionID: peer.sessionID, nodeID: peer.nodeID, host: "\(peer.capabilities.host) (\(address))",
                               models: Set(peer.capabilities.models), channel: context.channel)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let peer, !refused else { return }
        let message = unwrapInboundIn(data)
        let session = peer.sessionID
        switch (peer.role, message) {
        case (.worker, .credit(let slots)):
            shell.run { $0.credit(session, slots: Int(slots)) }
        case (.worker, .heartbeat(let ids)):
            shell.run { $0.heartbeat(session, taskIDs: ids) }
        case (.worker, .progress(let taskID, let step, let total)):
            shell.run { $0.progress(session, taskID: taskID, step: Int(step), total: Int(total)) }
        case (.worker, .result(let taskID, let result)):
            shell.run { $0.result(session, taskID: taskID, result: result) }
        case (.worker, .failed(let taskID, let retryable, let reason)):
            shell.run { $0.failed(session, taskID: taskID, retryable: retryable, reason: reason) }
        case (_, .goodbye(let reason)):
            if peer.role == .worker { shell.run { $0.draining(session) } }
            logger.info("peer said goodbye", metadata: ["reason": "\(reason)"])
            context.close(promise: nil)
        case (.client, .submit(let output, let layout, let edits, let workingDirectory)):
            do {
                let folder = try outputFolder(output, workingDirectory: workingDirectory)
                try shell.submit(edits, output: folder.path, layout: layout, client: peer.client, from: context.channel)
            } catch {
                answer(context, refusing: "submission", error, client: peer.client)
            }
        case (.client, .pictureQuery(let digests)):
            context.writeAndFlush(wrapOutboundOut(.picturesMissing(digests: shell.broker.missingPictures(digests))), promise: nil)
        case (.client, .picture(let picture)):
            do { try shell.keepPicture(picture, client: peer.client, from: context.channel) } catch {
                answer(context, refusing: "picture", error, client: peer.client)
            }
        case (.client, .watch(let jobID)), (.monitor, .watch(let jobID)):
            if !shell.watch(jobID, channel: context.channel) {
                context.writeAndFlush(wrapOutboundOut(.error(code: WireError.Code.rejected.rawValue, reason: "no job '\(jobID)'")), promise: nil)
            }
        case (.client, .statusRequest), (.monitor, .statusRequest):
            context.writeAndFlush(wrapOutboundOut(.statusReport(shell.broker.status())), promise: nil)
        case (.worker, .submit), (.worker, .watch), (.worker, .statusRequest), (.worker, .picture), (.worker, .pictureQuery),
             (.monitor, .submit), (.monitor, .picture), (.monitor, .pictureQuery), (.client, .credit), (.monitor, .credit):
            refuse(context.channel, WireError(.forbidden, "a \(ServerHandshakeHandler.name(peer.role)) credential cannot '\(message.name)': "
                                              + Self.allowed(peer.role)))
        default:
            refuse(context.channel, WireError(.unexpectedMessage, "'\(message.name)' is not a message a \(peer.role) sends"))
        }
    }

    /// A job or picture refused, the connection kept: an error frame with the refusal's code
    /// (`overLimit` for a limit), the reason logged.
    private func answer(_ context: ChannelHandlerContext, refusing what: String, _ error: Error, client: String) {
        logger.warning("\(what) refused", metadata: ["reason": "\(error)", "client": "\(client)"])
        let code = (error as? SubmissionError)?.code ?? .rejected
        context.writeAndFlush(wrapOutboundOut(.error(code: code.rawValue, reason: "\(error)")), promise: nil)
    }

    /// What each role's credential allows, for refusals.
    static func allowed(_ role: PeerRole) -> String {
        switch role {
        case .worker: return "it runs tasks, and nothing else (submitting, watching and the status take the clients' or status credential)"
        case .client: return "it submits, watches and reads the status (running tasks takes the workers' credential)"
        case .monitor: return "it is read-only (the status and watching jobs); submitting takes the clients' credential"
        }
    }

    /// The folder a submission writes to: under the output root when the coordinator has one,
    /// else as given (a relative folder under the client's working directory).
    func outputFolder(_ requested: String, workingDirectory: String) throws -> URL {
        if let outputRoot { return try outputRoot.resolve(requested) }
        let folder: URL
        if requested.hasPrefix("/") {
            folder = URL(fileURLWithPath: requested).standardizedFileURL
        } else {
            guard workingDirectory.hasPrefix("/") else {
                throw SubmissionError("--output: '\(requested)' is relative and the client sent no working folder; give an absolute path")
            }
            folder = URL(fileURLWithPath: workingDirectory).appendingPathComponent(requested).standardizedFileURL
        }
        guard folder.path.utf8.count <= OutputRoot.maximumPathBytes else {
            throw SubmissionError("--output: the folder's path is \(folder.path.utf8.count) bytes, over \(OutputRoot.maximumPathBytes); give a shorter one")
        }
        return folder
    }

    private func refuse(_ channel: Channel, _ error: WireError) {
        guard !refused else { return }
        refused = true
        refusal.refuse(channel, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let workerSession {
            shell.workerLeft(workerSession, reason: refused ? "connection refused" : "connection closed")
            self.workerSession = nil
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A TLS peer that went away without TLS's closing alert (a client process that ended)
        // only closed its connection.
        if TLSProblem.isDisconnection(error) { return context.close(promise: nil) }
        refuse(context.channel, WireError(refusing: error))
    }
}
