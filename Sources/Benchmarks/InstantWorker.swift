import EditContract
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Wire

/// A worker that answers every task at once with made-up outputs of the right shapes: stage-1
/// latents [prompts, 4, 1, 1] and 8x8 pictures. The coordinator's whole path runs (credit,
/// lease, result, journal, blobs, pictures, manifest) without any model's work: the dispatch
/// benchmark's workers, and the tests' where the coordinator is what is measured.
public final class InstantWorker: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = WireMessage
    public typealias OutboundOut = WireMessage

    /// Succeeds once the coordinator has welcomed this worker.
    public let ready: EventLoopPromise<Void>
    /// Tasks answered.
    public let answered = Atomic<Int>(0)
    public private(set) var channel: Channel?

    private init(ready: EventLoopPromise<Void>) { self.ready = ready }

    /// Connects to the coordinator on loopback `port` as worker `id`, serving `models`.
    public static func connect(group: EventLoopGroup, port: Int, secret: SharedSecret, id: String,
                               models: [String] = ["default"]) throws -> InstantWorker {
        let worker = InstantWorker(ready: group.next().makePromise())
        let codec = TensorCodec()
        let capabilities = NodeCapabilities(models: models, threads: 1, host: "instant", version: "ptp-\(WireProtocol.version)")
        worker.channel = try ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let limits = ConnectionLimits.unauthenticated()
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: codec)),
                        MessageToByteHandler(WireMessageEncoder(codec: codec)),
                        ClientHandshakeHandler(handshake: ClientHandshake(secret: secret, role: .worker, nodeID: id), capabilities: capabilities,
                                               limits: limits, tensorBytes: codec.limit),
                        worker,
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: port).wait()
        return worker
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ClientHandshakeHandler.Joined else { return context.fireUserInboundEventTriggered(event) }
        context.writeAndFlush(wrapOutboundOut(.credit(slots: 1)), promise: nil)
        ready.succeed(())
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .assign(let taskID, let work) = unwrapInboundIn(data) else { return }
        answered.add(1, ordering: .relaxed)
        context.write(wrapOutboundOut(.result(taskID: taskID, result: Self.answer(work))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.credit(slots: 1)), promise: nil)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        ready.fail(error)
        context.close(promise: nil)
    }

    /// Outputs of the right shapes for `work`.
    public static func answer(_ work: TaskWork) -> TaskResult {
        switch work {
        case .stageOne(let edits, _):
            return .stageOne(edits.map { edit in
                let run = EditRun(model: "instant", mode: .replace,
                                  settings: .init(steps: 1, guidance: 1, height: 8, width: 8, scheduler: nil, precision: edit.precision))
                let latents = TensorPayload(name: "latents", shape: [edit.prompts.count, 4, 1, 1],
                                            floats: [Float](repeating: 0.5, count: edit.prompts.count * 4))
                return StageOneEdit(id: edit.id, outcome: .ran(run, seconds: 0, output: latents))
            })
        case .finish:
            return .finish(FinishedImage(seconds: 0, image: picture))
        case .variant(let work):
            // Scores spread by the variant's seed: some pass the recipe's filter, most do not.
            guard let plan = work.line.sampling else { return .variant(.failed(reason: "no samples")) }
            let draw = VariantDraw(lineSeed: work.line.seed, index: work.index, vary: VariedValues())
            let spread = Double(draw.seed % 1000) / 1000
            let scores = plan.scorer == nil ? nil : PairScores(text0: 0.25, text1: 0.2 + spread / 10, direction: spread - 0.5, image: 0.6 + spread / 5)
            let run = EditRun(model: "instant", mode: .replace,
                              settings: .init(steps: 1, guidance: 1, height: 8, width: 8, scheduler: nil, precision: work.line.precision))
            let wanted = plan.keepRejected || plan.passes(scores)
            return .variant(.ran(ScoredVariant(draw: draw, run: run, seconds: 0, scores: scores,
                                               pictures: wanted ? [picture, picture] : [])))
        }
    }

    private static let picture = TensorPayload(name: "image", elementType: .uint8, shape: [8, 8, 3], bytes: [UInt8](repeating: 120, count: 192))
}
