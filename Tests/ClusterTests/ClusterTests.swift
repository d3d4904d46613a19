import Foundation
import Imaging
import NIOCore
import NIOPosix
import Testing
import Wire

/// End-to-end tests of the distributed renderer: real coordinator and worker processes, the
/// fixture model at few steps, each test bounded in time.
@Suite("cluster", .serialized)
struct ClusterTests {
    /// The outputs of every edit of a batch, checked against single-machine `ptp edit`.
    func expectIdenticalToSingleMachine(_ batch: URL, output: URL, harness: ClusterHarness) throws {
        let lines = try String(contentsOf: batch, encoding: .utf8).split(separator: "\n")
        for line in lines {
            let spec = harness.directory.appendingPathComponent("spec.json")
            try Data(line.utf8).write(to: spec)
            let id = (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? String ?? ""
            let single = harness.directory.appendingPathComponent("single").appendingPathComponent(id)
            let run = ClusterHarness.run([ClusterHarness.ptp.path, "edit", "--spec", spec.path, "--output", single.path], timeout: 300)
            #expect(run.status == 0, "ptp edit failed: \(run.output)")
            for name in try FileManager.default.contentsOfDirectory(atPath: single.path) {
                let a = try Data(contentsOf: single.appendingPathComponent(name))
                let b = try Data(contentsOf: output.appendingPathComponent(id).appendingPathComponent(name))
                // A Bool, not the two Data values: swift-testing would diff them byte by byte.
                let identical = a == b
                #expect(identical, "\(id)/\(name) differs from single-machine ptp edit (\(a.count) and \(b.count) bytes)")
            }
        }
    }

    func expectComplete(_ output: URL, edits: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        let manifest = ClusterHarness.manifest(output)
        let ids = manifest.compactMap { $0["id"] as? String }
        #expect(ids.count == edits, "manifest has \(ids.count) lines for \(edits) edits", sourceLocation: sourceLocation)
        #expect(Set(ids).count == ids.count, "duplicate manifest lines", sourceLocation: sourceLocation)
        #expect(manifest.allSatisfy { $0["status"] as? String == "ok" }, "failed edits: \(manifest.filter { $0["status"] as? String != "ok" })",
                sourceLocation: sourceLocation)
        for line in manifest {
            for image in (line["images"] as? [String] ?? []) + [line["grid"] as? String ?? "missing"] {
                #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent(image).path), "\(image) missing", sourceLocation: sourceLocation)
            }
        }
    }

    /// Whether this CPU runs bf16 (AVX512-BF16 or AMX), as /proc/cpuinfo says.
    static var bfloat16: Bool {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        return flags.contains(" avx512_bf16") || flags.contains(" amx_bf16")
    }

    /// 24 edits of the fixture model, each in fp32 or bf16 (where the CPU runs it), with DDIM,
    /// DPM-Solver++ (Karras) or Euler.
    func mixedBatch(_ harness: ClusterHarness) throws -> URL {
        let variants = [#""scheduler": "dpm++-karras""#, Self.bfloat16 ? #""precision": "bf16""# : #""scheduler": "euler""#,
                        Self.bfloat16 ? #""precision": "bf16", "scheduler": "euler""# : #""scheduler": "ddim""#, nil]
        let plain = try harness.batch("plain", count: 24)
        let lines = try String(contentsOf: plain, encoding: .utf8).split(separator: "\n").enumerated().map { index, line in
            variants[index % variants.count].map { String(line.dropLast()) + ", " + $0 + "}" } ?? String(line)
        }
        let batch = harness.directory.appendingPathComponent("batch.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: batch)
        return batch
    }

    @Test("a batch of 24 edits over 2 workers, as separate hosts, mixing precisions and schedulers, is bit-identical to ptp edit",
          .timeLimit(.minutes(10)))
    func batchOverTwoWorkers() throws {
        let harness = try ClusterHarness(name: "batch", hosts: ["coordinator", "w1", "w2"], useNamespaces: true)
        defer { harness.stopAll() }
        try harness.startCoordinator()
        try harness.startWorker("w1")
        // w2 serves fp32 only: the coordinator must send every bf16 edit to w1.
        try harness.startWorker("w2", extra: Self.bfloat16 ? ["--precision", "fp32"] : [])
        try harness.waitForWorkers(["w1", "w2"])
        if !Self.bfloat16 { print("[cluster] no bf16 on this CPU: the batch runs in fp32 only") }
        let batch = try mixedBatch(harness)
        let output = harness.directory.appendingPathComponent("out")
        let submitted = harness.submit(batch, output: output)
        #expect(submitted.status == 0, "\(submitted.output)")
        expectComplete(output, edits: 24)
        let manifest = ClusterHarness.manifest(output)
        // Both workers did stage-1 work; bf16 edits only on the worker serving bf16.
        let workers = Set(manifest.compactMap { ($0["workers"] as? [String: Any])?["stage1"] as? String })
        #expect(workers == ["w1", "w2"], "stage 1 ran on \(workers)")
        let bf16 = manifest.filter { ($0["settings"] as? [String: Any])?["precision"] as? String == "bf16" }
        #expect(bf16.count == (Self.bfloat16 ? 12 : 0), "\(bf16.count) edits ran in bf16")
        for line in bf16 {
            let ran = line["workers"] as? [String: Any]
            #expect(ran?["stage1"] as? String == "w1" && (ran?["finish"] as? [String])?.allSatisfy { $0 == "w1" } == true,
                    "bf16 edit \(line["id"] ?? "?") ran on \(ran ?? [:])")
        }
        // The manifest says which scheduler ran.
        let schedulers = Set(manifest.compactMap { ($0["settings"] as? [String: Any])?["scheduler"] as? String })
        #expect(schedulers.contains("DPMSolverMultistepScheduler,use_karras_sigmas=true") && schedulers.contains("DDIMScheduler"), "\(schedulers)")
        #expect(harness.namespaces == ClusterHarness.namespacesPossible)
        print("[cluster] 24 edits over 2 workers in network namespaces: \(harness.namespaces)")
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
    }

    @Test("the embedded cascade over 2 workers: stage 1, per-image super-resolution and a real-image edit are bit-identical to ptp edit",
          .timeLimit(.minutes(10)))
    func cascadeOverTwoWorkers() throws {
        let harness = try ClusterHarness(name: "cascade")
        defer { harness.stopAll() }
        try harness.startCoordinator()
        try harness.startWorker("w1")
        try harness.startWorker("w2")
        try harness.waitForWorkers(["w1", "w2"])
        // No "model": the embedded shapes-world cascade, whose stage 2 is super-resolution.
        let image = ClusterHarness.root.appendingPathComponent("demo/blue-circle.png").path
        let lines = [
            #"{"id": "colour", "source": "a red circle on a blue background", "targets": ["a yellow circle on a blue background"], "seed": 3, "steps": 12}"#,
            #"{"id": "pattern", "source": "a white circle on a blue background", "targets": ["a white circle on a striped blue background"], "mode": "refine", "seed": 5, "steps": 12}"#,
            #"{"id": "real", "image": "\#(image)", "source": "a blue circle on a green background", "targets": ["a red circle on a green background"], "seed": 1, "steps": 12}"#,
        ]
        let batch = harness.directory.appendingPathComponent("cascade.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: batch)
        let output = harness.directory.appendingPathComponent("out")
        let submitted = harness.submit(batch, output: output)
        #expect(submitted.status == 0, "\(submitted.output)")
        expectComplete(output, edits: 3)
        // Stage 2 ran per image: 128 px outputs from the 32 px stage 1.
        let source = try PNGCodec.read(output.appendingPathComponent("colour/source.png"))
        #expect(source.width == 128 && source.height == 128, "stage-2 output is \(source.width)x\(source.height)")
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
    }

    @Test("kill -9 of a worker mid-task: the job completes, nothing missing or duplicated", .timeLimit(.minutes(10)))
    func workerKilled() throws {
        let harness = try ClusterHarness(name: "kill-worker")
        defer { harness.stopAll() }
        try harness.startCoordinator(["--lease", "10"])
        try harness.startWorker("w1")
        try harness.startWorker("w2")
        try harness.waitForWorkers(["w1", "w2"])
        // Long enough stage-1 tasks to be caught in the middle.
        let batch = try harness.batch("batch", count: 4, steps: 30, size: 192)
        let output = harness.directory.appendingPathComponent("out")
        #expect(harness.submit(batch, output: output, detach: true).status == 0)
        let deadline = Date().addingTimeInterval(120)
        var busy = false
        while Date() < deadline && !busy {
            busy = harness.status().output.contains("\"id\":\"w1\"") && harness.status().output.range(of: #""id":"w1"[^}]*"state":"busy""#, options: .regularExpression) != nil
            if !busy { Thread.sleep(forTimeInterval: 0.1) }
        }
        try #require(busy, "w1 never got a task")
        harness.kill("w1")
        // w2 finishes the job, including the task w1 was running.
        let end = Date().addingTimeInterval(300)
        while Date() < end && ClusterHarness.manifest(output).count < 4 { Thread.sleep(forTimeInterval: 0.5) }
        expectComplete(output, edits: 4)
        let coordinatorLog = harness.log("coordinator")
        #expect(coordinatorLog.contains("worker left"))
        #expect(coordinatorLog.contains("worker w1 left"), "the task w1 held was not queued again")
        let stageOne = ClusterHarness.manifest(output).compactMap { ($0["workers"] as? [String: Any])?["stage1"] as? String }
        #expect(stageOne.contains("w2"), "w2 ran no stage-1 task: \(stageOne)")
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
    }

    @Test("SIGTERM drains a busy worker: it finishes and delivers its task, then exits", .timeLimit(.minutes(10)))
    func workerDrained() throws {
        let harness = try ClusterHarness(name: "drain")
        defer { harness.stopAll() }
        try harness.startCoordinator()
        let worker = try harness.start("w1", host: "w1", ["worker", "--coordinator", harness.coordinatorAddress, "--threads", "1", "--node-id", "w1",
                                                          "--model", ClusterHarness.model, "--secret-file", harness.secretFile.path])
        try harness.startWorker("w2")
        try harness.waitForWorkers(["w1", "w2"])
        let batch = try harness.batch("batch", count: 4, steps: 30, size: 192)
        let output = harness.directory.appendingPathComponent("out")
        #expect(harness.submit(batch, output: output, detach: true).status == 0)
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && harness.status().output.range(of: #""id":"w1"[^}]*"state":"busy""#, options: .regularExpression) == nil {
            Thread.sleep(forTimeInterval: 0.1)
        }
        harness.kill("w1", signal: SIGTERM)
        #expect(worker.terminationStatus == 0, "the drained worker exited with \(worker.terminationStatus)")
        let end = Date().addingTimeInterval(300)
        while Date() < end && ClusterHarness.manifest(output).count < 4 { Thread.sleep(forTimeInterval: 0.5) }
        expectComplete(output, edits: 4)
        #expect(harness.log("w1").contains("draining"))
        // The task w1 was running when told to stop was delivered by w1, not run again elsewhere.
        let stageOne = ClusterHarness.manifest(output).compactMap { ($0["workers"] as? [String: Any])?["stage1"] as? String }
        #expect(stageOne.contains("w1"), "no edit's stage 1 came from the drained worker: \(stageOne)")
        #expect(!harness.log("coordinator").contains("lease expired"))
    }

    @Test("the coordinator killed mid-job and restarted finishes the job from its journal", .timeLimit(.minutes(10)))
    func coordinatorRestarted() throws {
        let harness = try ClusterHarness(name: "restart")
        defer { harness.stopAll() }
        try harness.startCoordinator()
        try harness.startWorker("w1", extra: [])
        try harness.waitForWorkers(["w1"])
        let batch = try harness.batch("batch", count: 8, steps: 30, size: 192)
        let output = harness.directory.appendingPathComponent("out")
        #expect(harness.submit(batch, output: output, detach: true).status == 0)
        // Let some edits finish, then kill the coordinator while others are under way (finished
        // edits are delivered before new ones start, so they trickle out as the job runs).
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && ClusterHarness.manifest(output).count < 1 { Thread.sleep(forTimeInterval: 0.1) }
        let before = ClusterHarness.manifest(output).count
        #expect(before >= 1 && before < 8, "\(before) edits finished before the kill")
        harness.kill("coordinator")
        try harness.start("coordinator-2", host: "coordinator", ["coordinator", "--port", String(harness.port), "--state",
                                                                  harness.directory.appendingPathComponent("state").path,
                                                                  "--secret-file", harness.secretFile.path])
        try harness.waitForCoordinator()
        let end = Date().addingTimeInterval(300)
        while Date() < end && ClusterHarness.manifest(output).count < 8 { Thread.sleep(forTimeInterval: 0.5) }
        expectComplete(output, edits: 8)
        #expect(harness.log("coordinator-2").contains("resumed from the journal"))
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
    }
}
