import Foundation
import Testing
import Wire

/// Every fault at once, on loopback: workers killed and restarted, one frozen past its lease,
/// the coordinator killed and restarted; the batch still arrives exactly once, bit-identical.
extension ClusterTests {
    @Test("chaos: 24 edits over 3 workers while workers are killed -9 and restarted, one is frozen past its lease, and the coordinator is killed -9 and restarted twice",
          .timeLimit(.minutes(10)))
    func chaos() throws {
        let harness = try ClusterHarness(name: "chaos")
        defer { harness.stopAll() }
        let coordinatorArguments = ["coordinator", "--port", String(harness.port), "--state", harness.directory.appendingPathComponent("state").path,
                                    "--lease", "4", "--attempts", "50", "--secret-file", harness.secretFile.path]
        _ = try harness.start("coordinator-0", coordinatorArguments)
        try harness.waitForCoordinator()
        var workers: [String: Process] = [:]
        var incarnations: [String: Int] = [:]
        func startWorker(_ id: String) throws {
            incarnations[id, default: 0] += 1
            workers[id] = try harness.start("\(id)-\(incarnations[id] ?? 0)", ["worker", "--coordinator", harness.coordinatorAddress, "--threads", "1",
                                                                                "--node-id", id, "--heartbeat", "1", "--secret-file", harness.secretFile.path])
        }
        let ids = ["w1", "w2", "w3"]
        for id in ids { try startWorker(id) }
        try harness.waitForWorkers(ids)

        // The embedded model, as users run it: stage 1 at its size, then super-resolution.
        let lines = (0..<24).map { i -> String in
            let colours = ["red", "green", "blue", "yellow", "white", "black"]
            let (a, b) = (colours[i % colours.count], colours[(i + 2) % colours.count])
            return #"{"id": "chaos-\#(i)", "source": "a \#(a) circle on a blue background", "targets": ["a \#(b) circle on a blue background"], "seed": \#(i), "steps": 12}"#
        }
        let batch = harness.directory.appendingPathComponent("chaos.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: batch)
        let output = harness.directory.appendingPathComponent("out")
        #expect(harness.submit(batch, output: output, detach: true).status == 0)

        var generator = SystemRandomNumberGenerator()
        let started = Date()
        var coordinatorRestarts = 0, workerKills = 0, frozen = false
        var nextKill = started.addingTimeInterval(2)
        let deadline = started.addingTimeInterval(420)
        while Date() < deadline && ClusterHarness.manifest(output).count < 24 {
            Thread.sleep(forTimeInterval: 0.2)
            let elapsed = Date().timeIntervalSince(started)
            // Workers die every 2-4 s for the first 45 s (every fault has happened by then); after
            // that the batch runs out undisturbed, so a slower CPU, whose tasks outlast the kill
            // interval, still finishes in bounded time.
            if Date() >= nextKill && elapsed < 45 {
                // kill -9 a random worker and start it again at once.
                let id = ids.randomElement(using: &generator) ?? "w1"
                if let process = workers[id], process.isRunning {
                    kill(process.processIdentifier, SIGCONT)
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                    workerKills += 1
                }
                try startWorker(id)
                nextKill = Date().addingTimeInterval(Double.random(in: 2...4, using: &generator))
            }
            if !frozen && elapsed > 5, let process = workers["w3"], process.isRunning {
                // Frozen past its lease (4 s): its task goes elsewhere; thawed, its late result is a duplicate.
                frozen = true
                kill(process.processIdentifier, SIGSTOP)
                DispatchQueue.global().asyncAfter(deadline: .now() + 9) { kill(process.processIdentifier, SIGCONT) }
            }
            if coordinatorRestarts < 2 && elapsed > Double(8 + 10 * coordinatorRestarts) {
                harness.kill("coordinator-\(coordinatorRestarts)")
                coordinatorRestarts += 1
                _ = try harness.start("coordinator-\(coordinatorRestarts)", coordinatorArguments)
                try harness.waitForCoordinator()
            }
        }
        print("[chaos] \(workerKills) worker kills, \(coordinatorRestarts) coordinator restarts, a worker frozen: \(frozen); "
              + "\(ClusterHarness.manifest(output).count) edits in \(Int(Date().timeIntervalSince(started))) s")
        #expect(coordinatorRestarts == 2 && frozen && workerKills >= 3, "the faults did not all happen before the batch finished")
        expectComplete(output, edits: 24)
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
    }
}
