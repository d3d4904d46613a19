import Benchmarks
import Coordinator
import EditContract
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import Wire

/// A slow output disk does not stall the coordinator: `ptp status` answers promptly while every
/// file the coordinator writes under the output folder takes a fifth of a second per operation.
/// In the serialized cluster suite, so that no other cluster test loads the cores meanwhile.
extension ClusterTests {
    @Test("status answers within 100 ms (p99 of 100) while results are written to a slow disk", .timeLimit(.minutes(5)))
    func statusWhileWritingSlowly() throws {
        guard let disk = try SlowMount(delayMilliseconds: 200) else { return }
        defer { disk.unmount() }
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-slow-state-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: state) }
        let secret = SharedSecret(Array("slow-disk-test-secret-0123456789".utf8))
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let server = CoordinatorServer(configuration: CoordinatorConfiguration(host: "127.0.0.1", port: 0, metricsPort: nil,
                                                                                stateDirectory: state, credentials: RoleCredentials(shared: secret)), logger: logger)
        try server.start()
        defer { server.shutdown() }
        let port = try #require(server.boundPort)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let workers = try (0..<2).map { try InstantWorker.connect(group: group, port: port, secret: secret, id: "instant-\($0)") }
        for worker in workers { try worker.ready.futureResult.wait() }

        let edits = try (0..<12).map { try EditEnvelope(EditSpec(id: "e\($0)", source: "a red circle", targets: ["a blue circle"])) }
        let client = CoordinatorClient(host: "127.0.0.1", port: port, credential: NodeCredential(secret: secret), role: .client)
        try client.connect()
        defer { client.close() }
        let output = disk.mountPoint.appendingPathComponent("results")
        let accepted = try client.request(.submit(outputDirectory: output.path, layout: .ptp, edits: edits))
        guard case .accepted = accepted else { Issue.record("job refused: \(accepted)"); return }

        let probe = CoordinatorClient(host: "127.0.0.1", port: port, credential: NodeCredential(secret: secret), role: .monitor)
        try probe.connect()
        defer { probe.close() }
        var times: [Double] = []
        for _ in 0..<100 {
            let start = DispatchTime.now().uptimeNanoseconds
            guard case .statusReport = try probe.request(.statusRequest) else { Issue.record("no status report"); return }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            Thread.sleep(forTimeInterval: 0.05)
        }
        times.sort()
        let written = workers.reduce(0) { $0 + $1.answered.load(ordering: .relaxed) }
        print(String(format: "[slow disk] status over 100 calls: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d tasks answered meanwhile",
                     times[49], times[98], times[99], written))
        #expect(times[98] < 100, "p99 \(times[98]) ms")
    }
}

/// The slow file system (Tests/Fixtures/slowfs) mounted over a fresh folder; nil, with the
/// reason printed, where FUSE cannot run here.
final class SlowMount {
    let mountPoint: URL
    let backing: URL
    private let process: Process

    init?(delayMilliseconds: Int) throws {
        guard getuid() == 0, FileManager.default.fileExists(atPath: "/dev/fuse") else {
            print("[skip] the slow-disk test mounts a FUSE file system, which needs root and /dev/fuse: not run here")
            return nil
        }
        let root = ClusterHarness.root
        let build = ClusterHarness.run(["bash", "-c", """
            set -e
            command -v pkg-config >/dev/null && pkg-config --exists fuse3 && command -v fusermount3 >/dev/null || \
              (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfuse3-dev fuse3 pkg-config >/dev/null)
            cc -O2 Tests/Fixtures/slowfs/slowfs.c $(pkg-config --cflags --libs fuse3) -o "$1"
            """, "slowfs", FileManager.default.temporaryDirectory.appendingPathComponent("ptp-slowfs").path])
        guard build.status == 0 else {
            print("[skip] cannot build the slow file system (libfuse3 from Debian): \(build.output)")
            return nil
        }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-slow-\(UUID().uuidString.prefix(8))")
        backing = base.appendingPathComponent("backing")
        mountPoint = base.appendingPathComponent("mount")
        for folder in [backing, mountPoint] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        process = Process()
        process.executableURL = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-slowfs")
        process.arguments = [backing.path, mountPoint.path, String(delayMilliseconds), "-f"]
        process.currentDirectoryURL = root
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !Self.isMounted(mountPoint) {
            guard Date() < deadline, process.isRunning else { throw HarnessError("slowfs did not mount at \(mountPoint.path)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    static func isMounted(_ folder: URL) -> Bool {
        ((try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? "").contains(" \(folder.path) fuse")
    }

    func unmount() {
        ClusterHarness.run(["fusermount3", "-u", "-z", mountPoint.path])
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: mountPoint.deletingLastPathComponent())
    }
}
