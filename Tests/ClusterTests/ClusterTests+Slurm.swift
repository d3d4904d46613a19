import Foundation
import Testing

/// The Slurm launchers, run for real by their self-test on a private one-node Slurm.
extension ClusterTests {
    @Test("cluster/slurm/selftest: a batch job with 2 workers, and a service job scaled by a worker job and stopped cleanly",
          .timeLimit(.minutes(10)))
    func slurmSelftest() {
        let script = ClusterHarness.root.appendingPathComponent("cluster/slurm/selftest").path
        let run = ClusterHarness.run([script], environment: ["PTP": ClusterHarness.ptp.path], timeout: 540)
        print(run.output.split(separator: "\n").suffix(30).joined(separator: "\n"))
        if run.status == 0, let reason = run.output.split(separator: "\n").first(where: { $0.hasPrefix("skip:") }) {
            // Only where Slurm cannot run here (not root, or no Slurm and no apt-get).
            print("[skip] \(reason)")
            return
        }
        #expect(run.status == 0 && run.output.contains("selftest passed"), "\(run.output.suffix(4000))")
    }
}
