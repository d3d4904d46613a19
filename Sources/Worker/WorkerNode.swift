import Dispatch
import EditContract
import Engine
import Foundation
import Logging
import NIOCore
import NIOPosix
import Wire

/// A worker node: loads its models once, keeps a link to the coordinator, takes one task at a
/// time on its credit, reports per-step progress, and on SIGTERM finishes its task, delivers
/// the result and leaves.
public final class WorkerNode: @unchecked Sendable {
    let configuration: WorkerConfiguration
    let runner: TaskRunner
    let logger: Logger
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var loop: EventLoop { group.next() }
    let compute = DispatchQueue(label: "ptp.worker.compute")
    let link: CoordinatorLink

    // Everything below is touched on `loop` only.
    /// The task being run, for heartbeats.
    private let running: Running
    private var currentTask: String? {
        get { running.task }
        set { running.task = newValue }
    }
    private var draining = false
    private var stopped = false
    private var deliveryDeadline: Scheduled<Void>?
    private let finished: EventLoopPromise<Void>

    /// Loads every model (this takes a while for large ones) and prepares to connect.
    public init(configuration: WorkerConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        ComputeThreads.setThreadCount(configuration.threads)
        let catalogue = try ModelCatalogue(directories: configuration.models, scorers: configuration.scorers, logger: logger)
        runner = TaskRunner(models: catalogue.models, scorers: catalogue.scorers, lowMemory: configuration.lowMemory,
                            inversions: configuration.inversionCacheBytes > 0 ? InversionCache(capacityBytes: configuration.inversionCacheBytes) : nil)
        let capabilities = NodeCapabilities(models: catalogue.capabilityKeys(precisions: configuration.precisions), threads: configuration.threads,
                                            host: ProcessInfo.processInfo.hostName, version: "ptp-\(WireProtocol.version)")
        let running = Running()
        link = CoordinatorLink(configuration: configuration, capabilities: capabilities, running: { running.tasks }, loop: group.next(), logger: logger)
        finished = group.next().makePromise()
        self.running = running
        link.delegate = self
    }

    /// Connects and works until drained (SIGTERM/SIGINT) or refused for good (wrong secret or
    /// protocol version). Throws only in the second case.
    public func run() throws {
        let signals = ShutdownSignals { [weak self] in
            guard let self else { return }
            self.loop.execute { self.drain() }
        }
        defer { signals.cancel() }
        loop.execute { self.link.connect() }
        defer { try? group.syncShutdownGracefully() }
        try finished.futureResult.wait()
    }

    // MARK: - Work

    private func askForWork() {
        guard link.isJoined, currentTask == nil, !draining else { return }
        link.send(.credit(slots: 1))
    }

    private func start(taskID: String, work: TaskWork) {
        guard currentTask == nil else {
            link.send(.failed(taskID: taskID, retryable: true, reason: "worker busy"))
            return
        }
        currentTask = taskID
        logger.info("task started", metadata: ["task": "\(taskID)", "kind": "\(work.kind)"])
        let runner = self.runner
        compute.async {
            let progress: (Int, Int) -> Void = { step, total in
                self.loop.execute { self.link.send(.progress(taskID: taskID, step: UInt32(step), total: UInt32(total))) }
            }
            let outcome: WireMessage
            do {
                outcome = .result(taskID: taskID, result: try runner.run(work, progress: progress))
            } catch let failure as TaskFailure {
                outcome = .failed(taskID: taskID, retryable: failure.retryable, reason: failure.reason)
            } catch {
                outcome = .failed(taskID: taskID, retryable: false, reason: "\(error)")
            }
            self.loop.execute { self.completed(taskID, outcome) }
        }
    }

    private func completed(_ taskID: String, _ outcome: WireMessage) {
        currentTask = nil
        if case .failed(_, _, let reason) = outcome {
            logger.warning("task failed", metadata: ["task": "\(taskID)", "reason": "\(reason)"])
        } else {
            logger.info("task done", metadata: ["task": "\(taskID)"])
        }
        link.send(outcome)
        if draining {
            if link.outbox.waiting.isEmpty { leave() } else { startDeliveryDeadline() }
        } else {
            askForWork()
        }
    }

    // MARK: - Leaving

    /// SIGTERM: take no more work; finish the current task, deliver it, then leave.
    private func drain() {
        guard !draining else { return }
        draining = true
        logger.info("draining: finishing the current task, then leaving", metadata: ["task": "\(currentTask ?? "none")"])
        if currentTask == nil && link.outbox.waiting.isEmpty { leave() }
    }

    /// A draining worker with a finished result and no coordinator: keep trying for a while,
    /// then leave (the coordinator runs the task again once its lease expires).
    private func startDeliveryDeadline() {
        guard deliveryDeadline == nil else { return }
        deliveryDeadline = loop.scheduleTask(in: configuration.drainDeliveryTimeout) {
            guard !self.stopped, !self.link.outbox.waiting.isEmpty else { return }
            self.logger.warning("leaving without delivering results: the coordinator stayed unreachable",
                                metadata: ["results": "\(self.link.outbox.waiting.count)", "waited s": "\(self.configuration.drainDeliveryTimeout.nanoseconds / 1_000_000_000)"])
            self.stop(error: nil)
        }
    }

    private func leave() {
        link.leave { self.stop(error: nil) }
    }

    private func stop(error: Error?) {
        guard !stopped else { return }
        stopped = true
        link.close()
        if let error { finished.fail(error) } else { finished.succeed(()) }
    }
}

extension WorkerNode: CoordinatorLinkDelegate {
    func linkJoined() {
        deliveryDeadline?.cancel()
        deliveryDeadline = nil
        if draining {
            // The results held while disconnected are delivered: nothing keeps this worker.
            if currentTask == nil { leave() }
        } else {
            askForWork()
        }
    }

    func linkAssigned(taskID: String, work: TaskWork) {
        start(taskID: taskID, work: work)
    }

    func linkLost() {
        if draining && currentTask == nil {
            if link.outbox.waiting.isEmpty { stop(error: nil) } else { startDeliveryDeadline() }
        }
    }

    func linkRefused(_ error: ConnectionError) {
        stop(error: error)
    }
}

/// The task a worker runs, read by its heartbeats (both on the worker's one event loop).
private final class Running: @unchecked Sendable {
    var task: String?
    var tasks: [String] { task.map { [$0] } ?? [] }
}
