import Coordinator
import EditContract
import Foundation
import Logging
import NIOCore
import NIOPosix
import Wire

/// Dispatch capacity: an in-process coordinator and `InstantWorker`s over real TCP connections
/// on loopback, running real jobs (stage-1 and finish tasks, journal, blobs, pictures and
/// manifest written) with no model work.
public struct DispatchMeasurement {
    /// Worker connection counts to measure.
    public var connections: [Int]
    /// Edits per measurement; each is half a stage-1 task (two packed together) and two finish tasks.
    public var edits: Int

    public init(connections: [Int], edits: Int) {
        (self.connections, self.edits) = (connections, edits)
    }

    /// One line per connection count, through `report`.
    public func run(report: (String) -> Void) throws {
        let secret = SharedSecret(Array("dispatch-benchmark-secret-0123456789".utf8))
        var logger = Logger(label: "ptp.bench") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .error
        // Both ends of every connection live in this process: two descriptors each.
        let needed = 2 * (connections.max() ?? 0) + 64
        let available = Self.raiseOpenFileLimit()
        guard needed <= available else {
            throw BenchmarkError("--connections: \(connections.max() ?? 0) connections need \(needed) open files, the limit here is \(available); "
                                 + "raise it (ulimit -n) or measure fewer")
        }
        report("connections  edits  tasks   seconds  tasks/s  edits/s")
        for count in connections {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-dispatch-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            let server = CoordinatorServer(configuration: CoordinatorConfiguration(
                host: "127.0.0.1", port: 0, metricsPort: nil, stateDirectory: folder.appendingPathComponent("state"), credentials: RoleCredentials(shared: secret)), logger: logger)
            try server.start()
            defer { server.shutdown() }
            guard let port = server.boundPort else { throw BenchmarkError("the coordinator has no port") }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            defer { try? group.syncShutdownGracefully() }
            let workers = try (0..<count).map { try InstantWorker.connect(group: group, port: port, secret: secret, id: "instant-\($0)") }
            for worker in workers { try worker.ready.futureResult.wait() }
            let client = CoordinatorClient(host: "127.0.0.1", port: port, credential: NodeCredential(secret: secret), role: .client)
            try client.connect()
            defer { client.close() }
            let batch = try (0..<edits).map { index -> EditEnvelope in
                try EditEnvelope(EditSpec(id: "e\(index)", source: "a red circle", targets: ["a blue circle"]))
            }
            let start = Date()
            guard case .accepted(let job, _, _) = try client.request(.submit(outputDirectory: folder.appendingPathComponent("out").path, layout: .ptp, edits: batch)) else {
                throw BenchmarkError("the coordinator refused the benchmark's job")
            }
            var last: JobProgressReport?
            try client.send(.watch(jobID: job))
            while last?.job.state ?? "running" == "running" {
                if case .jobProgress(_, let report)? = try client.next(timeout: 600) { last = report }
            }
            let seconds = Date().timeIntervalSince(start)
            let tasks = workers.reduce(0) { $0 + $1.answered.load(ordering: .relaxed) }
            guard let last, last.job.finished == edits else {
                throw BenchmarkError("dispatch at \(count) connections: \(last?.job.finished ?? 0) of \(edits) edits finished, "
                                     + "first failure: \(last?.failures.values.first ?? "none")")
            }
            report(String(format: "%11d  %5d  %5d  %8.2f  %7.0f  %7.0f", count, edits, tasks, seconds, Double(tasks) / seconds, Double(edits) / seconds))
            for worker in workers { worker.channel?.close(promise: nil) }
        }
    }

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
