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
        // Every edit in fp32 or bf16 (where the CPU runs it), with DDIM, DPM-Solver++ (Karras) or Euler.
        let variants = [#""scheduler": "dpm++-karras""#, Self.bfloat16 ? #""precision": "bf16""# : #""scheduler": "euler""#,
                        Self.bfloat16 ? #""precision": "bf16", "scheduler": "euler""# : #""scheduler": "ddim""#, nil]
        let plain = try harness.batch("plain", count: 24)
        let lines = try String(contentsOf: plain, encoding: .utf8).split(separator: "\n").enumerated().map { index, line in
            variants[index % variants.count].map { String(line.dropLast()) + ", " + $0 + "}" } ?? String(line)
        }
        let batch = harness.directory.appendingPathComponent("batch.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: batch)
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

    @Test("ptp generate on a random-weight SD directory matches diffusers' pipeline (PSNR >= 40 dB)", .timeLimit(.minutes(5)))
    func generateCommand() throws {
        struct Run: Decodable { let prompt: String; let seed: UInt64; let steps: Int; let guidance: Double }
        let fixtures = ClusterHarness.root.appendingPathComponent("Tests/Fixtures/reference")
        for name in ["tiny-sd", "tiny-sd-clip", "tiny-sd2"] {
            let runs = try JSONDecoder().decode([String: Run].self, from: Data(contentsOf: fixtures.appendingPathComponent("\(name)-pipeline.json")))
            for (tag, spec) in runs.sorted(by: { $0.key < $1.key }) {
                let output = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-generate-\(UUID().uuidString).png")
                defer { try? FileManager.default.removeItem(at: output) }
                let run = ClusterHarness.run([ClusterHarness.ptp.path, "generate", "--model", fixtures.appendingPathComponent(name).path,
                                              "--prompt", spec.prompt, "--seed", String(spec.seed), "--steps", String(spec.steps),
                                              "--guidance", String(spec.guidance), "--height", "64", "--width", "64", "--output", output.path])
                #expect(run.status == 0, "\(run.output)")
                // The reference image in [0, 1] from diffusers, against the PNG the command wrote.
                let reference = try ReferenceImage.load(fixtures.appendingPathComponent("\(name)-pipeline.safetensors"), tensor: "\(tag).image")
                let written = try ReferenceImage.png(output)
                var squared = 0.0
                for (a, b) in zip(reference, written) { squared += (a - b) * (a - b) }
                let psnr = 10 * log10(1 / (squared / Double(reference.count)))
                print("[cluster] ptp generate vs diffusers, \(name) \(tag): PSNR \(psnr) dB")
                #expect(psnr >= 40, "\(name) \(tag): \(spec.prompt)")
            }
        }
    }

    @Test("ptp generate with --precision and --scheduler: a DPM-Solver++ directory as diffusers saved it, bf16 near fp32, named refusals",
          .timeLimit(.minutes(5)))
    func precisionAndSchedulerOptions() throws {
        let fixtures = ClusterHarness.root.appendingPathComponent("Tests/Fixtures/reference")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-options-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // tiny-sd with the scheduler folder and model index diffusers saved after switching to DPM-Solver++ Karras.
        let model = directory.appendingPathComponent("tiny-sd-dpm")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tiny-sd"), to: model)
        let saved = fixtures.appendingPathComponent("sampler-pipelines/tiny-sd-dpm2m-karras")
        for file in ["model_index.json", "scheduler/scheduler_config.json"] {
            try FileManager.default.removeItem(at: model.appendingPathComponent(file))
            try FileManager.default.copyItem(at: saved.appendingPathComponent(file), to: model.appendingPathComponent(file))
        }
        func generate(_ name: String, _ extra: [String], environment: [String: String] = [:]) -> (status: Int32, output: String, image: URL) {
            let image = directory.appendingPathComponent("\(name).png")
            let run = ClusterHarness.run([ClusterHarness.ptp.path, "generate", "--model", model.path, "--prompt", "a red circle on a blue background",
                                          "--seed", "7", "--steps", "12", "--guidance", "7.5", "--height", "64", "--width", "64",
                                          "--output", image.path] + extra, environment: environment)
            return (run.status, run.output, image)
        }
        func psnr(_ a: [Double], _ b: [Double]) -> Double {
            10 * log10(1 / (zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(a.count)))
        }
        // The model's own scheduler (DPM-Solver++ Karras, from _class_name) reproduces diffusers.
        let own = generate("own", [])
        #expect(own.status == 0, "\(own.output)")
        let reference = try ReferenceImage.load(fixtures.appendingPathComponent("sampler-pipelines/images.safetensors"), tensor: "tiny-sd-dpm2m-karras.image")
        let fp32 = try ReferenceImage.png(own.image)
        #expect(psnr(reference, fp32) >= 40, "PSNR \(psnr(reference, fp32)) dB against diffusers")
        // Another scheduler by name changes the image.
        let euler = generate("euler", ["--scheduler", "euler"])
        #expect(euler.status == 0, "\(euler.output)")
        #expect(try ReferenceImage.png(euler.image) != fp32)
        if Self.bfloat16 {
            let bf16 = generate("bf16", ["--precision", "bf16"])
            #expect(bf16.status == 0, "\(bf16.output)")
            let quality = psnr(fp32, try ReferenceImage.png(bf16.image))
            print("[cluster] bf16 against fp32, tiny-sd DPM-Solver++ Karras: PSNR \(quality) dB")
            #expect(quality >= 25 && quality < 200, "bf16 image PSNR \(quality) dB against fp32")
        }
        // A CPU without native bfloat16 (oneDNN capped below AVX512-BF16) refuses bf16 by name, with no fallback.
        let capped = generate("capped", ["--precision", "bf16"], environment: ["DNNL_MAX_CPU_ISA": "AVX512_CORE"])
        #expect(capped.status != 0 && capped.output.contains("bf16") && capped.output.contains("AVX512-BF16"), "\(capped.output)")
        #expect(!FileManager.default.fileExists(atPath: capped.image.path))
        let unknown = generate("unknown", ["--scheduler", "lms"])
        #expect(unknown.status != 0 && unknown.output.contains("scheduler") && unknown.output.contains("dpm++-karras"), "\(unknown.output)")
        let unsupported = generate("unsupported", ["--scheduler", "dpm++,algorithm_type=sde-dpmsolver++"])
        #expect(unsupported.status != 0 && unsupported.output.contains("algorithm_type"), "\(unsupported.output)")
    }

    @Test("the dispatch benchmark's no-op tasks all reach a simulated worker and come back done", .timeLimit(.minutes(5)))
    func dispatchBenchmarkDispatches() throws {
        // The command fails unless every task was answered by a worker and committed done.
        let run = ClusterHarness.run([ClusterHarness.ptp.path, "bench", "dispatch", "--connections", "1", "100", "--tasks", "2000"], timeout: 240)
        #expect(run.status == 0, "\(run.output)")
        let rows = run.output.split(separator: "\n").filter { $0.split(separator: " ").first.map { Int($0) != nil } ?? false }
        #expect(rows.count == 2, "\(run.output)")
        print("[cluster] dispatch benchmark, short run:\n\(run.output)")
    }

    @Test("ptp edit from flags: the same edit as its JSON spec, attention pictures, a no-control baseline, named errors",
          .timeLimit(.minutes(5)))
    func editCommand() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-edit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let ptp = ClusterHarness.ptp.path
        let prompts = ["--source", "a red circle on a blue background", "--target", "a yellow circle on a blue background"]
        let controls = ["--cross-replace", "default=0.8,yellow=0.5", "--self-replace", "0:0.4", "--blend", "circle", "--blend", "circle",
                        "--reweight", "yellow=2", "--seed", "3", "--steps", "10", "--no-super-resolution"]
        func edit(_ name: String, _ extra: [String]) -> URL {
            let output = folder.appendingPathComponent(name)
            let run = ClusterHarness.run([ptp, "edit"] + extra + ["--output", output.path], timeout: 240)
            #expect(run.status == 0, "\(name): \(run.output)")
            return output
        }
        let flags = edit("flags", prompts + controls + ["--attention"])
        for name in ["source.png", "target-1.png", "grid.png", "attention-source.png", "attention-target-1.png"] {
            #expect(FileManager.default.fileExists(atPath: flags.appendingPathComponent(name).path), "\(name) missing")
        }
        // The same edit as one JSON object gives the same bytes.
        let spec = folder.appendingPathComponent("edit.json")
        try Data(#"""
            {"id": "e", "source": "a red circle on a blue background", "targets": ["a yellow circle on a blue background"],
             "cross_replace": {"default": 0.8, "yellow": 0.5}, "self_replace": [0, 0.4], "blend": [["circle"], ["circle"]],
             "reweight": {"yellow": 2}, "seed": 3, "steps": 10, "super_resolution": false}
            """#.utf8).write(to: spec)
        let fromSpec = edit("spec", ["--spec", spec.path])
        // The no-control baseline: the same batch and noise, so the source row is the same image
        // and the edited row is not.
        let baseline = edit("baseline", prompts + ["--mode", "none", "--seed", "3", "--steps", "10", "--no-super-resolution"])
        func bytes(_ folder: URL, _ name: String) -> Data { (try? Data(contentsOf: folder.appendingPathComponent(name))) ?? Data() }
        for name in ["source.png", "target-1.png"] {
            let same = bytes(flags, name) == bytes(fromSpec, name)
            #expect(same, "\(name): flags and spec differ")
        }
        let sourceKept = bytes(flags, "source.png") == bytes(baseline, "source.png")
        let targetEdited = bytes(flags, "target-1.png") != bytes(baseline, "target-1.png")
        #expect(sourceKept && targetEdited, "control left the source alone: \(sourceKept); changed the edited image: \(targetEdited)")
        // Bad values are refused by field, with the fix.
        let bad = ClusterHarness.run([ptp, "edit"] + prompts + ["--cross-replace", "1.5", "--output", folder.appendingPathComponent("bad").path])
        #expect(bad.status != 0 && bad.output.contains("cross_replace"), "\(bad.output)")
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

    @Test("wrong secret, wrong version, malformed and oversized frames, early tensors and a zstd bomb are refused; the rest keeps working",
          .timeLimit(.minutes(10)))
    func hostilePeers() throws {
        let harness = try ClusterHarness(name: "hostile")
        defer { harness.stopAll() }
        try harness.startCoordinator()
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
        #expect(try raw.exchange(frames: [try RawPeer.frame(.hello(version: 99, role: .worker, nodeID: "old", capabilities: "{}", nonce: []))])
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
    }
}

/// A hand-driven protocol peer for the hostile-input tests.
final class RawPeer: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel: Channel
    let inbox = Inbox()

    final class Inbox: @unchecked Sendable {
        let lock = NSLock()
        var messages: [WireMessage] = []
        var closed = false
    }

    init(address: String) throws {
        let parts = address.split(separator: ":")
        let inbox = self.inbox
        channel = try ClientBootstrap(group: group).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandlers([
                    ByteToMessageHandler(WireMessageDecoder(limits: ConnectionLimits(frameBytes: 1 << 20, tensorBytes: 1 << 20), codec: TensorCodec())),
                    Collector(inbox: inbox),
                ])
            }
        }.connect(host: String(parts[0]), port: Int(parts[1])!).wait()
    }

    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = WireMessage
        let inbox: Inbox
        init(inbox: Inbox) { self.inbox = inbox }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            inbox.lock.withLock { inbox.messages.append(unwrapInboundIn(data)) }
        }
        func channelInactive(context: ChannelHandlerContext) { inbox.lock.withLock { inbox.closed = true } }
    }

    static func frame(_ message: WireMessage, codec: TensorCodec = TensorCodec()) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try WireMessageEncoder(codec: codec).encode(data: message, out: &buffer)
        return buffer
    }

    /// A result whose tensor claims 16 bytes but holds a zstd frame of 64 MiB of zeros.
    static func bombFrame() throws -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(UInt8(14))  // result
        for text in ["t-bomb", "{}"] {
            body.writeInteger(UInt32(text.utf8.count))
            body.writeString(text)
        }
        body.writeInteger(UInt16(1))
        let huge = TensorPayload(name: "x", elementType: .uint8, shape: [64 << 20], bytes: [UInt8](repeating: 0, count: 64 << 20))
        var tensor = ByteBuffer()
        try TensorCodec(zstdLevel: 19, shuffle: false).encode(huge, into: &tensor)
        // Rewrite the declared shape and size to 16 bytes; the stored zstd frame still says 64 MiB.
        let nameLength = 4 + 1
        tensor.setInteger(UInt32(16), at: nameLength + 2)            // shape[0]
        tensor.setInteger(UInt64(16), at: nameLength + 2 + 4 + 2)    // raw size
        body.writeBuffer(&tensor)
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(body.readableBytes))
        frame.writeBuffer(&body)
        return frame
    }

    func authenticate(secret: SharedSecret, nodeID: String) throws {
        var handshake = ClientHandshake(secret: secret, role: .worker, nodeID: nodeID)
        try channel.writeAndFlush(try Self.frame(handshake.hello(capabilities: #"{"models":[],"threads":1,"host":"x","version":"t"}"#))).wait()
        guard case .challenge(let nonce)? = waitMessage() else { throw HarnessError("no challenge") }
        try channel.writeAndFlush(try Self.frame(try handshake.answer(challenge: nonce))).wait()
        guard case .welcome(_, let proof)? = waitMessage() else { throw HarnessError("not welcomed") }
        try handshake.accept(welcomeProof: proof)
    }

    /// A result holding an honest 64 MiB tensor of zeros: a few kilobytes on the wire.
    static func honestLargeResultFrame() throws -> ByteBuffer {
        let zeros = TensorPayload(name: "zeros", elementType: .uint8, shape: [64 << 20], bytes: [UInt8](repeating: 0, count: 64 << 20))
        return try frame(.result(taskID: "t-early", payload: "{}", tensors: [zeros]), codec: TensorCodec(zstdLevel: 19, shuffle: false))
    }

    /// Sends raw frames and returns the first message back (nil if the peer just closed).
    func exchange(frames: [ByteBuffer]) throws -> WireMessage? {
        for frame in frames { try channel.writeAndFlush(frame).wait() }
        return waitMessage()
    }

    func waitMessage(timeout: TimeInterval = 10) -> WireMessage? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let message: WireMessage = inbox.lock.withLock({ inbox.messages.isEmpty ? nil : inbox.messages.removeFirst() }) { return message }
            if inbox.lock.withLock({ inbox.closed }) { return nil }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    func close() {
        channel.close(promise: nil)
        try? group.syncShutdownGracefully()
    }
}
