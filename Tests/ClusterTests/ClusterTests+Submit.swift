import Foundation
import Testing
import Wire

/// What `ptp submit` tells its user, and when it gives up.
extension ClusterTests {
    @Test("ptp submit says at once that no worker serves an edit's model, exits 1 when edits fail, and gives up on a coordinator that stays away",
          .timeLimit(.minutes(5)))
    func submitOutcomes() throws {
        let harness = try ClusterHarness(name: "submit")
        defer { harness.stopAll() }
        try harness.startCoordinator(["--unserved-timeout", "3"])
        // No worker at all: the edits wait, the submitter hears why, then they fail.
        let batch = try harness.batch("unserved", count: 2)
        let output = harness.directory.appendingPathComponent("unserved")
        let started = Date()
        let unserved = harness.submit(batch, output: output, timeout: 120)
        #expect(unserved.status == 1, "\(unserved.output)")
        #expect(unserved.output.contains("waiting: no connected worker serves model"), "\(unserved.output)")
        #expect(unserved.output.contains("failed: no connected worker serves model") && unserved.output.contains("waited 3 s"), "\(unserved.output)")
        #expect(Date().timeIntervalSince(started) < 60)
        let lines = ClusterHarness.manifest(output)
        #expect(lines.count == 2 && lines.allSatisfy { $0["status"] as? String == "failed" })

        // A coordinator that goes away for good: the submitter gives up after its bound.
        let second = try harness.batch("orphan", count: 1)
        let watcher = try harness.start("submit-orphan", ["submit", second.path, "--coordinator", harness.coordinatorAddress,
                                                          "--output", harness.directory.appendingPathComponent("orphan").path,
                                                          "--reconnect-timeout", "3", "--secret-file", harness.secretFile.path])
        let accepted = Date().addingTimeInterval(30)
        while Date() < accepted && !harness.log("submit-orphan").contains("accepted") { Thread.sleep(forTimeInterval: 0.1) }
        harness.kill("coordinator")
        ClusterHarness.waitForExit(watcher, grace: 60)
        #expect(!watcher.isRunning && watcher.terminationStatus != 0)
        #expect(harness.log("submit-orphan").contains("stayed unreachable for 3 s"), "\(harness.log("submit-orphan"))")
    }
}
