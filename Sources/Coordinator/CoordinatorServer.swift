import Dispatch
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Wire

/// How a coordinator listens and keeps its state.
public struct CoordinatorConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var metricsPort: Int?
    /// The address the metrics endpoint listens on: loopback unless asked, since it is
    /// unauthenticated.
    public var metricsHost = "127.0.0.1"
    /// A metrics connection silent this long is closed (Prometheus reconnects for its next scrape).
    public var metricsIdleTimeout: TimeAmount = .seconds(30)
    /// Journal and intermediate results.
    public var stateDirectory: URL
    public var secret: SharedSecret
    public var scheduler: SchedulerSettings
    public var codec: TensorCodec

    public init(host: String = "0.0.0.0", port: Int, metricsPort: Int?, stateDirectory: URL, secret: SharedSecret,
                scheduler: SchedulerSettings = SchedulerSettings(), codec: TensorCodec = TensorCodec()) {
        (self.host, self.port, self.metricsPort, self.stateDirectory, self.secret, self.scheduler, self.codec) =
            (host, port, metricsPort, stateDirectory, secret, scheduler, codec)
    }
}

/// The coordinator process: the protocol server, the scheduler on one event loop, the metrics
/// endpoint and status page, and graceful shutdown on SIGTERM/SIGINT (stop accepting, say goodbye, write the
/// manifests; the journal is always consistent).
public final class CoordinatorServer: @unchecked Sendable {
    let configuration: CoordinatorConfiguration
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let metrics = CoordinatorMetrics()
    /// Made, kept and used on the group's one event loop; `NIOLoopBound` checks that.
    private var scheduler: NIOLoopBound<SchedulerShell>?
    private var channels: [Channel] = []
    private let stopped: EventLoopPromise<Void>
    private var connections: [ObjectIdentifier: Channel] = [:]

    public init(configuration: CoordinatorConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        stopped = group.next().makePromise()
    }

    /// The bound protocol port (useful when configured as 0).
    public private(set) var boundPort: Int?

    /// Starts listening; returns once ready.
    public func start() throws {
        let loop = group.next()
        let scheduler = try loop.submit { [configuration, metrics, logger] in
            let core = try Scheduler(journal: try Journal(directory: configuration.stateDirectory),
                                     store: ResultStore(state: configuration.stateDirectory), metrics: metrics, logger: logger,
                                     settings: configuration.scheduler)
            let shell = SchedulerShell(core: core, loop: loop)
            try shell.run { try $0.restore() }
            return NIOLoopBound(shell, eventLoop: loop)
        }.wait()
        self.scheduler = scheduler
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [configuration, metrics, logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    let limits = ConnectionLimits.unauthenticated()
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteCounter(metrics: metrics),
                        ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: configuration.codec)),
                        MessageToByteHandler(WireMessageEncoder(codec: configuration.codec)),
                        PeerHandler(scheduler: scheduler.value, secret: configuration.secret, limits: limits, codec: configuration.codec,
                                    metrics: metrics, logger: logger),
                    ])
                    self.connections[ObjectIdentifier(channel)] = channel
                    channel.closeFuture.whenComplete { _ in self.connections[ObjectIdentifier(channel)] = nil }
                }
            }
            .bind(host: configuration.host, port: configuration.port).wait()
        channels.append(server)
        boundPort = server.localAddress?.port
        if let metricsPort = configuration.metricsPort {
            let loopback = ["127.0.0.1", "localhost", "::1"].contains(configuration.metricsHost) || configuration.metricsHost.hasPrefix("127.")
            let sources = MonitorEndpoint.Sources(metrics: metrics, scheduler: scheduler, thumbnails: ThumbnailCache(), loopbackOnly: loopback)
            let http = try ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [configuration, sources] channel in
                    channel.pipeline.configureHTTPServerPipeline().flatMap {
                        channel.pipeline.addHandlers([IdleStateHandler(readTimeout: configuration.metricsIdleTimeout), IdleConnectionCloser(),
                                                      MonitorEndpoint(sources: sources)])
                    }
                }
                .bind(host: configuration.metricsHost, port: metricsPort).wait()
            channels.append(http)
        }
        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let (status, jobs) = scheduler.value.run { core in
                core.checkLeases()
                core.checkUnserved()
                core.retryOutputs()
                core.pruneThroughput()
                core.flushManifests()
                return (core.status(), core.jobCounts())
            }
            self.metrics.recordJobs(jobs)
            self.metrics.queueDepth.record(status.queuedTasks)
            self.metrics.leasedTasks.record(status.leasedTasks)
            self.metrics.unservedModels.record(status.unserved.count)
        }
        logger.info("coordinator listening", metadata: ["port": "\(boundPort ?? 0)", "metrics": "\(configuration.metricsPort.map(String.init) ?? "off")",
                                                       "state": "\(configuration.stateDirectory.path)"])
    }

    /// Queues no-op tasks (dispatch benchmarks); returns their job id.
    public func submitNoopTasks(count: Int, model: String) throws -> String {
        guard let scheduler else { throw SubmissionError("the coordinator is not started") }
        return try scheduler.eventLoop.submit { try scheduler.value.run { try $0.submitNoopTasks(count: count, model: model) } }.wait()
    }

    /// How the tasks of a job stand (dispatch benchmarks).
    public func tally(job: String) throws -> TaskTally {
        guard let scheduler else { throw SubmissionError("the coordinator is not started") }
        return try scheduler.eventLoop.submit { scheduler.value.core.tally(job: job) }.wait()
    }

    /// Runs until SIGTERM/SIGINT, then shuts down gracefully.
    public func run() throws {
        try start()
        let signals = ShutdownSignals { [weak self] in self?.shutdown() }
        defer { signals.cancel() }
        try stopped.futureResult.wait()
        try? group.syncShutdownGracefully()
    }

    /// Stops accepting, says goodbye to every peer, writes the manifests.
    public func shutdown() {
        let loop = group.next()
        loop.execute {
            self.logger.info("shutting down")
            for channel in self.channels { channel.close(promise: nil) }
            for channel in self.connections.values {
                channel.writeAndFlush(WireMessage.goodbye(reason: "coordinator shutting down")).whenComplete { _ in channel.close(promise: nil) }
            }
            self.scheduler?.value.run { $0.flushManifests() }
            loop.scheduleTask(in: .milliseconds(200)) { self.stopped.succeed(()) }
        }
    }
}
