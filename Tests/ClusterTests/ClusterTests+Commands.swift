import Foundation
import Imaging
import NIOCore
import NIOPosix
import Testing
import Wire

/// The single-machine commands, end to end.
extension ClusterTests {
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

    @Test("the dispatch benchmark's jobs all reach simulated workers and finish, pictures and manifest written", .timeLimit(.minutes(5)))
    func dispatchBenchmarkDispatches() throws {
        // The command fails unless every edit of its job finished.
        let run = ClusterHarness.run([ClusterHarness.ptp.path, "bench", "dispatch", "--connections", "1", "100", "--edits", "400"], timeout: 240)
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
}
