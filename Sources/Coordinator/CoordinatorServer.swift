import Dispatch
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
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
    /// What signs each role in.
    public var credentials: RoleCredentials
    /// TLS on the protocol port (`--tls-cert`, `--tls-key`; with `--tls-ca`, mutual TLS).
    public var tls: NIOSSLContext?
    /// The folder every job's output must be under (`--output-root`); nil: anywhere this user
    /// can write, as before roots existed.
    public var outputRoot: OutputRoot?
    public var broker: BrokerSettings
    public var codec: TensorCodec

    public init(host: String = "0.0.0.0", port: Int, metricsPort: Int?, stateDirectory: URL, credentials: RoleCredentials,
                tls: NIOSSLContext? = nil, outputRoot: OutputRoot? = nil, broker: BrokerSettings = BrokerSettings(), codec: TensorCodec = TensorCodec()) {
        (self.host, self.port, self.metricsPort, self.stateDirectory, self.credentials, self.broker, self.codec) =
            (host, port, metricsPort, stateDirectory, credentials, broker, codec)
        (self.tls, self.outputRoot) = (tls, outputRoot)
    }
}

/// The coordinator process: the protocol server, the broker on one event loop with its storage
/// on a thread of its own, the metrics endpoint and status page, and graceful shutdown on
/// SIGTERM/SIGINT (stop accepting, say goodbye, write the manifests; the journal is always
/// consistent).
public final class CoordinatorServer: @unchecked Sendable {
    let configuration: CoordinatorConfiguration
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let metrics = CoordinatorMetrics()
    /// Made, kept and used on the group's one event loop; `NIOLoopBound` checks that.
    private var shell: NIOLoopBound<BrokerShell>?
    private var channels: [Channel] = []
    private let stopped: EventLoopPromise<Void>
    private var connections: [ObjectIdentifier: Channel] = [:]
    /// Set on the event loop once `shutdown` began.
    private var stopping = false

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
        let journal = try SQLiteJournal(directory: configuration.stateDirectory)
        let storage = Storage(journal: journal, store: FileResultStore(state: configuration.stateDirectory), logger: logger)
        let (contents, nextJobNumber) = (try journal.load(), try journal.nextJobNumber())
        let pictures = try storage.store.carriedPictures()
        let shell = try loop.submit { [configuration, metrics, logger] in
            let broker = TaskBroker(nextJobNumber: nextJobNumber, metrics: metrics, logger: logger, settings: configuration.broker)
            let shell = BrokerShell(broker: broker, board: StatusBoard(), storage: StorageQueue(storage), loop: loop)
            shell.run { broker in
                broker.restorePictures(pictures)
                broker.restore(contents)
            }
            return NIOLoopBound(shell, eventLoop: loop)
        }.wait()
        self.shell = shell
        try listen(shell)
        if let metricsPort = configuration.metricsPort { try serveMetrics(on: metricsPort, shell) }
        loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [metrics] _ in
            let shell = shell.value
            let (status, jobs) = shell.run { broker in
                broker.checkLeases()
                broker.releaseFinishedJobs()
                broker.checkUnserved()
                broker.retryOutputs()
                broker.flushManifests()
                return (broker.status(), broker.jobCounts())
            }
            shell.board.prune(now: Date())
            metrics.recordJobs(jobs)
            metrics.queueDepth.record(status.queuedTasks)
            metrics.leasedTasks.record(status.leasedTasks)
            metrics.unservedModels.record(status.unserved.count)
        }
        logger.info("coordinator listening", metadata: ["port": "\(boundPort ?? 0)", "metrics": "\(configuration.metricsPort.map(String.init) ?? "off")",
                                                       "state": "\(configuration.stateDirectory.path)", "tls": "\(configuration.tls == nil ? "off" : "on")",
                                                       "output root": "\(configuration.outputRoot?.path ?? "none")"])
    }

    /// The protocol port: each connection's handshake, then its messages routed to the broker.
    private func listen(_ shell: NIOLoopBound<BrokerShell>) throws {
        let refusal = Refusal(metrics: metrics, logger: logger)
        let server = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [configuration, metrics, logger] channel in
                channel.eventLoop.makeCompletedFuture {
                    let limits = ConnectionLimits.unauthenticated()
                    try channel.pipeline.syncOperations.addHandler(ByteCounter(metrics: metrics))
                    if let tls = configuration.tls { try channel.pipeline.syncOperations.addHandler(TLSPortGuard(context: tls, refusal: refusal)) }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: configuration.codec)),
                        MessageToByteHandler(WireMessageEncoder(codec: configuration.codec)),
                        ServerHandshakeHandler(credentials: configuration.credentials, limits: limits, workerTensorBytes: configuration.codec.limit,
                                               refusal: refusal, logger: logger),
                        PeerRouter(shell: shell.value, refusal: refusal, outputRoot: configuration.outputRoot, logger: logger),
                    ])
                    self.connections[ObjectIdentifier(channel)] = channel
                    channel.closeFuture.whenComplete { _ in self.connections[ObjectIdentifier(channel)] = nil }
                }
            }
            .bind(host: configuration.host, port: configuration.port).wait()
        channels.append(server)
        boundPort = server.localAddress?.port
    }

    /// The metrics port: Prometheus's /metrics and the status page.
    private func serveMetrics(on port: Int, _ shell: NIOLoopBound<BrokerShell>) throws {
        let host = configuration.metricsHost
        let loopback = ["127.0.0.1", "localhost", "::1"].contains(host) || host.hasPrefix("127.")
        let sources = MonitorEndpoint.Sources(metrics: metrics, shell: shell, thumbnails: ThumbnailCache(), loopbackOnly: loopback)
        let http = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [configuration, sources] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandlers([IdleStateHandler(readTimeout: configuration.metricsIdleTimeout),
                                                                     IdleConnectionCloser(), MonitorEndpoint(sources: sources)])
                }
            }
            .bind(host: host, port: port).wait()
        channels.append(http)
    }

    /// Runs until SIGTERM/SIGINT, then shuts down gracefully.
    public func run() throws {
        try start()
        let signals = ShutdownSignals { [weak self] in self?.shutdown() }
        defer { signals.cancel() }
        try stopped.futureResult.wait()
        try? group.syncShutdownGracefully()
    }

    /// Stops accepting, says goodbye to every peer, writes the manifests, and stops once the
    /// storage queue has carried out everything asked of it, or after `storageDeadline` if the
    /// disk hangs (the journal is consistent either way; what was not written is written after
    /// a restart).
    public func shutdown(storageDeadline: TimeAmount = .seconds(30)) {
        let loop = group.next()
        loop.execute {
            guard !self.stopping else { return }
            self.stopping = true
            self.logger.info("shutting down")
            for channel in self.channels { channel.close(promise: nil) }
            for channel in self.connections.values {
                channel.writeAndFlush(WireMessage.goodbye(reason: "coordinator shutting down")).whenComplete { _ in channel.close(promise: nil) }
            }
            guard let shell = self.shell?.value else { return self.stopped.succeed(()) }
            shell.run { $0.flushManifests() }
            let done = NIOLoopBoundBox(false, eventLoop: loop)
            let deadline = loop.scheduleTask(in: storageDeadline) {
                guard !done.value else { return }
                done.value = true
                self.logger.warning("stopping with storage work outstanding: the disk did not finish in time")
                self.stopped.succeed(())
            }
            shell.whenStorageIdle {
                guard !done.value else { return }
                done.value = true
                deadline.cancel()
                loop.scheduleTask(in: .milliseconds(200)) { self.stopped.succeed(()) }
            }
        }
    }
}
