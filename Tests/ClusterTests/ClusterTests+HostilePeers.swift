import Foundation
import Imaging
import NIOCore
import NIOPosix
import Testing
import Wire

/// Peers that do not follow the protocol.
extension ClusterTests {
    @Test("wrong secret, wrong version, malformed and oversized frames, early tensors and a zstd bomb are refused; the rest keeps working",
          .timeLimit(.minutes(10)))
    func hostilePeers() throws {
        let harness = try ClusterHarness(name: "hostile")
        defer { harness.stopAll() }
        let metricsPort = harness.port + 1
        try harness.startCoordinator(["--metrics-port", String(metricsPort), "--metrics-idle-timeout", "2"])
        try harness.startWorker("w1")
        try harness.waitForWorkers(["w1"])
        let address = harness.coordinatorAddress
        let secret = try SharedSecret.load(file: harness.secretFile.path)
        // A job under way while the attacks come: it must finish, on a worker that never lost
        // its connection.
        let during = try harness.batch("during", count: 3, steps: 30, size: 128)
        let duringOutput = harness.directory.appendingPathComponent("during")
        #expect(harness.submit(during, output: duringOutput, detach: true).status == 0)

        // A client with the wrong secret.
        let wrong = harness.directory.appendingPathComponent("wrong-secret")
        try Data("a different secret entirely!".utf8).write(to: wrong)
        let refused = ClusterHarness.run([ClusterHarness.ptp.path, "status", "--coordinator", address, "--once", "--secret-file", wrong.path], timeout: 20)
        #expect(refused.status != 0 && refused.output.contains("wrong cluster secret"), "\(refused.output)")

        let raw = try RawPeer(address: address)
        defer { raw.close() }
        // Wrong protocol version.
        #expect(try raw.exchange(frames: [try RawPeer.frame(.hello(version: 99, role: .worker, nodeID: "old", capabilities: NodeCapabilities(), nonce: []))])
            == .error(code: WireError.Code.badVersion.rawValue, reason: "protocol version 99; this coordinator speaks \(WireProtocol.version)"))
        // A malformed frame (unknown message type).
        var malformed = ByteBuffer()
        malformed.writeInteger(UInt32(1))
        malformed.writeInteger(UInt8(99))
        let unknown = try RawPeer(address: address).exchange(frames: [malformed])
        if case .error(let code, _)? = unknown { #expect(code == WireError.Code.unknownMessage.rawValue) } else { Issue.record("no error for a malformed frame: \(String(describing: unknown))") }
        // An oversized frame announced before authentication.
        var oversized = ByteBuffer()
        oversized.writeInteger(UInt32(0x7FFF_FFFF))
        let large = try RawPeer(address: address).exchange(frames: [oversized])
        if case .error(let code, _)? = large { #expect(code == WireError.Code.frameTooLarge.rawValue) } else { Issue.record("no error for an oversized frame") }
        // A tensor before the handshake: refused unread (it would decompress to 64 MiB).
        let early = try RawPeer(address: address).exchange(frames: [try RawPeer.honestLargeResultFrame()])
        if case .error(let code, _)? = early { #expect(code == WireError.Code.unexpectedMessage.rawValue) } else { Issue.record("no error for a tensor before the handshake") }
        // A zstd bomb from an authenticated worker.
        let bomber = try RawPeer(address: address)
        try bomber.authenticate(secret: secret, nodeID: "bomber")
        let bomb = try bomber.exchange(frames: [RawPeer.bombFrame()])
        if case .error(let code, _)? = bomb { #expect(code == WireError.Code.tensorRejected.rawValue) } else { Issue.record("no error for a zstd bomb: \(String(describing: bomb))") }
        // A signed-in worker that is refused, or whose connection is reset, leaves the cluster:
        // no ghost is listed, counted or given tasks.
        let resetter = try RawPeer(address: address)
        try resetter.authenticate(secret: secret, nodeID: "resetter")
        resetter.reset()
        var ghosts = ["bomber", "resetter"]
        let ghostDeadline = Date().addingTimeInterval(10)
        while !ghosts.isEmpty && Date() < ghostDeadline {
            Thread.sleep(forTimeInterval: 0.2)
            let listed = harness.status().output
            ghosts = ghosts.filter { listed.contains("\"id\":\"\($0)\"") }
        }
        #expect(ghosts.isEmpty, "still listed after their connections ended: \(ghosts)")

        // The metrics port closes connections that stay silent, so idle ones cannot use up the
        // coordinator's file descriptors; it still serves a scrape.
        let host = String(address.split(separator: ":")[0])
        let idle = try (0..<20).map { _ in try TCPProbe(host: host, port: metricsPort) }
        #expect(idle.allSatisfy { $0.waitForClose(timeout: 8) }, "idle metrics connections stayed open")
        let scrape = try TCPProbe.get(host: host, port: metricsPort, path: "/metrics")
        #expect(scrape.hasPrefix("HTTP/1.1 200") && scrape.contains("ptp_connected_workers"), "\(scrape.prefix(300))")

        // Every refusal is logged with its reason.
        let log = harness.log("coordinator")
        for reason in ["wrong cluster secret", "protocol version 99", "unknown message type", "over the limit", "before the handshake finished", "zstd frame"] {
            #expect(log.contains(reason), "no log line for \(reason)")
        }
        // The job submitted before the attacks completes, and the worker kept its one session.
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline && ClusterHarness.manifest(duringOutput).count < 3 { Thread.sleep(forTimeInterval: 0.2) }
        expectComplete(duringOutput, edits: 3)
        let joins = harness.log("coordinator").split(separator: "\n").filter { $0.contains("worker joined") && $0.contains("node=w1") }
        #expect(joins.count == 1, "w1 joined \(joins.count) times: \(joins)")
        #expect(!harness.log("w1").contains("reconnect"), "\(harness.log("w1"))")
        // And the real worker still serves a new job.
        let batch = try harness.batch("after", count: 3)
        let output = harness.directory.appendingPathComponent("out")
        #expect(harness.submit(batch, output: output).status == 0)
        expectComplete(output, edits: 3)

        // The metrics as Prometheus users expect them: HELP and TYPE on every family (promtool
        // clean), per-node counters and task durations, queue wait, edit latency, jobs by state.
        // (Gauges follow the coordinator's one-second tick.)
        var body = ""
        let scraped = Date().addingTimeInterval(10)
        repeat {
            body = try TCPProbe.get(host: host, port: metricsPort, path: "/metrics").components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            if body.contains("ptp_jobs{state=\"completed\"} 2") { break }
            Thread.sleep(forTimeInterval: 0.5)
        } while Date() < scraped
        for family in ["ptp_node_task_seconds_bucket{node=\"w1\"", "ptp_node_images_completed_total{node=\"w1\"}", "ptp_queue_wait_seconds_count",
                       "ptp_edit_latency_seconds_count", "ptp_jobs{state=\"completed\"} 2", "# HELP ptp_connected_workers", "# TYPE ptp_node_task_seconds histogram"] {
            #expect(body.contains(family), "no \(family) in:\n\(body.prefix(3000))")
        }
        if let promtool = ClusterHarness.tool("promtool", package: "prometheus") {
            let file = harness.directory.appendingPathComponent("metrics.txt")
            try Data(body.utf8).write(to: file)
            let check = ClusterHarness.run(["sh", "-c", "\(promtool) check metrics < \(file.path)"], timeout: 60)
            #expect(check.status == 0 && check.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool: \(check.output)")
        }
    }
}
