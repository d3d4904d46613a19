import Foundation
import Testing

extension ClusterTests {
    @Test("a flood of submissions: past its queue limit a client is refused with the limit named, and the coordinator's memory stays within its bound",
          .timeLimit(.minutes(5)))
    func submissionFlood() throws {
        let harness = try ClusterHarness(name: "flood")
        defer { harness.stopAll() }
        let limit = 100_000, perJob = 25_000
        try harness.startCoordinator(["--max-client-queued-edits", String(limit), "--max-queued-edits", String(2 * limit)])
        let pid = try #require(harness.pid("coordinator"))
        // No workers: every accepted edit stays queued.
        let batch = try harness.batch("flood", count: perJob)
        let idle = ClusterHarness.memory(of: pid)
        var refusals: [String] = []
        var accepted = 0
        var held = idle
        for round in 0..<12 {
            let run = harness.submit(batch, output: harness.directory.appendingPathComponent("out-\(round)"), detach: true, timeout: 120)
            if run.status == 0 { accepted += perJob } else { refusals.append(run.output) }
            if round == limit / perJob - 1 { held = ClusterHarness.memory(of: pid) }
        }
        let after = ClusterHarness.memory(of: pid)
        #expect(accepted == limit, "\(accepted) edits accepted for a limit of \(limit)")
        #expect(refusals.count == 8 && refusals.allSatisfy { $0.contains("--max-client-queued-edits") && $0.contains("\(limit)") },
                "\(refusals.first ?? "no refusal")")
        // The bound: what the limit's edits hold queued (a few kilobytes each) over the idle coordinator.
        let bound = idle.resident + limit * 4 / 1024 + 64
        #expect(after.peak <= bound, "peak \(after.peak) MB over the bound of \(bound) MB")
        #expect(after.resident <= held.resident + 32, "refused submissions grew the coordinator from \(held.resident) to \(after.resident) MB")
        #expect(harness.status().status == 0)
        print("[cluster] flood of 12 jobs of \(perJob) edits, limit \(limit): \(accepted) accepted, \(refusals.count) refused; resident \(idle.resident) MB idle, "
              + "\(held.resident) MB at the limit, \(after.resident) MB after the refusals, peak \(after.peak) MB (bound \(bound) MB)")
    }
}
