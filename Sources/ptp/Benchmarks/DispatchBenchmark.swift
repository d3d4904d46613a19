import ArgumentParser
import Coordinator
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Wire

/// Dispatch capacity: an in-process coordinator and simulated workers that answer every task
/// at once, over real TCP connections on loopback.
struct DispatchBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatch",
        abstract: "Tasks per second the coordinator dispatches to simulated no-op workers, at several connection counts.")

    @Option(parsing: .upToNextOption, help: "Worker connection counts to measure.")
    var connections: [Int] = [10, 100, 1000, 2000]

    @Option(help: "Tasks per measurement.")
    var tasks: Int = 20000

    func run() throws {
        let secret = SharedSecret(Array("dispatch-benchmark-secret-0123456789".utf8))
        var logger = Logger(label: "ptp.bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .error
        // Both ends of every connection live in this process: two descriptors each.
        let needed = 2 * (connections.max() ?? 0) + 64
        let available = Self.raiseOpenFileLimit()
        guard needed <= available else {
            throw ValidationError("--connections: \(connections.max() ?? 0) connections need \(needed) open files, the limit here is \(available); raise it (ulimit -n) or measure fewer")
        }
        print("connections  tasks   seconds  tasks/s")
        for count in connections {
            let state = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-dispatch-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: state) }
            let server = CoordinatorServer(configuration: CoordinatorConfiguration(host: "127.0.0.1", port: 0, metricsPort: nil,
                                                                                    stateDirectory: state, secret: secret), logger: logger)
            try server.start()
            guard let port = server.boundPort else { throw CommandError("no port") }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let workers = try (0..<count).map { try SimulatedWorker.connect(group: group, port: port, secret: secret, id: "sim-\($0)") }
            for worker in workers { try worker.ready.futureResult.wait() }
            let start = Date()
            let job = try server.submitNoopTasks(count: tasks, model: "noop")
            // Waits on the workers' own counts; the coordinator's tally (a scan of every task on
            // its event loop) is read once a second, to stop early if tasks fail.
            var answered = 0, tally = TaskTally(), polls = 0
            repeat {
                Thread.sleep(forTimeInterval: 0.002)
                answered = workers.reduce(0) { $0 + $1.answered.load(ordering: .relaxed) }
                polls += 1
                if answered >= tasks || polls % 500 == 0 { tally = try server.tally(job: job) }
            } while tally.unfinished > 0 || (answered < tasks && tally.failed == 0)
            let seconds = Date().timeIntervalSince(start)
            // A task that fails before reaching a worker also leaves the queue: count only
            // tasks that went out, came back and were committed.
            guard tally.done == tasks, tally.failed == 0, answered == tasks else {
                throw CommandError("dispatch at \(count) connections: \(tally.done) of \(tasks) tasks done, \(tally.failed) failed, "
                                   + "\(answered) answered by workers; first failure: \(tally.firstError ?? "none")")
            }
            print(String(format: "%11d  %6d  %7.2f  %7.0f", count, tasks, seconds, Double(tasks) / seconds))
            for worker in workers { worker.channel?.close(promise: nil) }
            try? group.syncShutdownGracefully()
            server.shutdown()
        }
    }
}

extension DispatchBenchmark {
    /// Raises the soft open-file limit to the hard one; returns the limit in force.
    static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)
    }
}

/// A worker that authenticates, asks for one task at a time and answers each at once.
final class SimulatedWorker: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WireMessage
    typealias OutboundOut = WireMessage
    let id: String
    let ready: EventLoopPromise<Void>
    /// Tasks this worker answered.
    let answered = Atomic<Int>(0)
    var handshake: ClientHandshake
    var channel: Channel?

    init(secret: SharedSecret, id: String, ready: EventLoopPromise<Void>) {
        (self.id, self.ready) = (id, ready)
        handshake = ClientHandshake(secret: secret, role: .worker, nodeID: id)
    }

    static func connect(group: EventLoopGroup, port: Int, secret: SharedSecret, id: String) throws -> SimulatedWorker {
        let worker = SimulatedWorker(secret: secret, id: id, ready: group.next().makePromise())
        let codec = TensorCodec()
        let channel = try ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WireMessageDecoder(limits: ConnectionLimits(frameBytes: WireProtocol.defaultFrameLimit, tensorBytes: 0),
                                                                codec: codec)),
                        MessageToByteHandler(WireMessageEncoder(codec: codec)), worker,
                    ])
                }
            }
            .connect(host: "127.0.0.1", port: port).wait()
        let capabilities = try NodeCapabilities(models: ["noop"], threads: 1, host: "sim", version: "bench").jsonText()
        worker.channel = channel
        channel.writeAndFlush(worker.handshake.hello(capabilities: capabilities), promise: nil)
        return worker
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .challenge(let nonce):
            do { context.writeAndFlush(wrapOutboundOut(try handshake.answer(challenge: nonce)), promise: nil) } catch { ready.fail(error) }
        case .welcome(_, let proof):
            do { try handshake.accept(welcomeProof: proof) } catch {
                ready.fail(error)
                return
            }
            context.writeAndFlush(wrapOutboundOut(.credit(slots: 1)), promise: nil)
            ready.succeed(())
        case .assign(let taskID, _, _, _):
            answered.add(1, ordering: .relaxed)
            context.write(wrapOutboundOut(.result(taskID: taskID, payload: "{}", tensors: [])), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.credit(slots: 1)), promise: nil)
        case .error(_, let reason):
            ready.fail(CommandError(reason))
        default:
            break
        }
    }
}
