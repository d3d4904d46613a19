import EditContract
import Engine
import Foundation

/// One UNet forward in Swift and in PyTorch, in float32 and in bfloat16, on the same weights
/// and inputs, in the same run (`ptp bench unet`). Each side and precision runs in a process of
/// its own, so that peak memory is its own: this executable again (`runChild`), and the
/// repository's reference/bench_unet.py.
public struct UNetComparison {
    public var model: URL
    public var batch: Int
    public var latent: Int
    public var threads: Int
    public var repeats: Int
    public var precisions: [Precision]
    /// A Python with torch and diffusers; nil for scripts/python-env's.
    public var python: String?
    public var swiftOnly: Bool
    /// This executable, and the arguments that run its child side (`--child INPUTS:OUTPUT`
    /// and one `--precision` are added).
    public var executable: URL
    public var childArguments: [String]

    public init(model: URL, batch: Int, latent: Int, threads: Int, repeats: Int, precisions: [Precision], python: String?, swiftOnly: Bool,
                executable: URL, childArguments: [String]) {
        (self.model, self.batch, self.latent, self.threads, self.repeats, self.precisions) = (model, batch, latent, threads, repeats, precisions)
        (self.python, self.swiftOnly, self.executable, self.childArguments) = (python, swiftOnly, executable, childArguments)
    }

    /// What one run measured (either side).
    struct Run: Codable {
        var seconds: Double
        var gflops: Double
        var peakMiB: Double
        var detail: String
    }

    /// Runs every side; returns the report.
    public func run() throws -> String {
        // The sgemm peak first, on a quiet process: every figure is reported against it.
        let peak = KernelReport.measureGEMM(m: 2048, n: 2048, k: 2048, repeats: 5)
        let component = try ModelDirectory(url: model).component("unet", supportedClasses: ["UNet2DConditionModel"])
        let configuration = try UNetConfiguration(component.config)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = TorchGenerator(seed: 0)
        let inputs = directory.appendingPathComponent("inputs.safetensors")
        var tensors = [
            "sample": generator.normal([batch, configuration.inChannels, latent, latent]),
            "context": generator.normal([batch, 77, configuration.crossAttentionWidth]),
            "timesteps": Tensor(shape: [batch], values: (0..<batch).map { Float(981 - 20 * $0) }),
        ]
        if let embedding = configuration.textTimeEmbedding {
            // SDXL: a pooled text embedding, and the time ids of a square image of this latent's size.
            tensors["text_embeds"] = generator.normal([batch, embedding.pooledWidth])
            let side = Float(latent * 8)
            tensors["time_ids"] = Tensor(shape: [batch, 6], values: Array(Array(repeating: [side, side, 0, 0, side, side], count: batch).joined()))
        }
        try SafeTensorsWriter.write(tensors, to: inputs)
        progress(String(format: "sgemm peak: %.1f GFLOP/s", peak))

        var rows: [(name: String, run: Run, output: Tensor)] = []
        for precision in precisions {
            let saved = directory.appendingPathComponent("swift-\(precision).safetensors")
            try Processes.run(executable, childArguments + ["--precision", precision.rawValue, "--child", inputs.path + ":" + saved.path])
            rows.append(("swift \(precision)", try JSONDecoder().decode(Run.self, from: Data(contentsOf: URL(fileURLWithPath: saved.path + ".json"))),
                         try SafeTensorsFile(url: saved).tensor("output")))
        }
        if !swiftOnly {
            let root = PythonPeer.repositoryRoot(of: executable)
            for (precision, dtype) in [(Precision.fp32, "float32"), (.bf16, "bfloat16")] where precisions.contains(precision) || precision == .fp32 {
                let saved = directory.appendingPathComponent("pytorch-\(precision).safetensors")
                let peer = try PythonPeer.run(script: "reference/bench_unet.py", python: python, arguments: [
                    "--unet", component.directory.path, "--inputs", inputs.path, "--output", saved.path,
                    "--threads", String(threads), "--repeats", String(repeats), "--dtype", dtype], root: root)
                let seconds = peer["seconds"]?.doubleValue ?? .nan
                let flops = rows.first?.run.gflops ?? .nan
                rows.append(("pytorch \(precision)", Run(seconds: seconds, gflops: flops * (rows.first?.run.seconds ?? .nan) / seconds,
                                                         peakMiB: peer["peak_mib"]?.doubleValue ?? .nan,
                                                         detail: "torch \(peer["torch"]?.stringValue ?? "?"), \(peer["threads"]?.intValue ?? 0) threads"),
                             try SafeTensorsFile(url: saved).tensor("output")))
            }
        }
        let reference = rows.first { $0.name == "pytorch fp32" }?.output
        var report = [
            "UNet forward: batch \(batch), latent \(latent)x\(latent), \(threads) threads, model \(model.lastPathComponent)",
            "CPU: \(CPUDescription.current); \(Engine.oneDNNConfiguration)",
            String(format: "sgemm peak (OpenBLAS, 2048^3): %.1f GFLOP/s", peak),
            "side            time (s)   GFLOP/s  of peak   peak memory   max abs error vs pytorch fp32",
        ]
        for row in rows {
            let error = reference.map { String(format: "%.3g", row.output.maxAbsDifference($0)) } ?? "-"
            report.append(row.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(format: " %9.2f %9.1f %8.0f%% %9.0f MiB   %@", row.run.seconds, row.run.gflops, 100 * row.run.gflops / peak,
                         row.run.peakMiB, error) + "  (\(row.run.detail))")
        }
        if let reference { report.append(String(format: "output scale (pytorch fp32): %.3g", reference.maxAbs)) }
        for precision in precisions {
            guard let ours = rows.first(where: { $0.name == "swift \(precision)" }), let theirs = rows.first(where: { $0.name == "pytorch \(precision)" })
            else { continue }
            report.append(String(format: "swift / pytorch wall time, %@: %.2f", precision.rawValue, ours.run.seconds / theirs.run.seconds))
        }
        return report.joined(separator: "\n")
    }

    /// A child run: loads the UNet, times it on the parent's inputs at one precision, saves the
    /// output and what it measured beside it.
    public static func runChild(model: URL, inputs: URL, output: URL, precision: Precision, repeats: Int) throws {
        let component = try ModelDirectory(url: model).component("unet", supportedClasses: ["UNet2DConditionModel"])
        let unet = try UNet2DConditionModel(component: component)
        let file = try SafeTensorsFile(url: inputs)
        let sample = try file.tensor("sample"), context = try file.tensor("context")
        let timesteps = try file.tensor("timesteps").scalars
        let added = file.entries["text_embeds"] == nil ? nil
            : UNetAddedConditions(textEmbeds: try file.tensor("text_embeds"), timeIDs: try file.tensor("time_ids"))
        var best = Double.infinity, operations = 0
        var result = Tensor.zeros([1])
        for run in 0...repeats {
            OperationCount.total.store(0, ordering: .relaxed)
            let start = Date()
            result = unet(sample, timesteps: timesteps, context: context, added: added, precision: precision)
            let seconds = Date().timeIntervalSince(start)
            operations = OperationCount.total.load(ordering: .relaxed)
            progress(String(format: "swift %@ run %d: %.2f s", precision.rawValue, run, seconds))
            if run > 0 || repeats == 0 { best = min(best, seconds) }
        }
        let measured = Run(seconds: best, gflops: Double(operations) / best / 1e9, peakMiB: PeakMemory.selfMiB(), detail: "oneDNN")
        try SafeTensorsWriter.write(["output": result], to: output)
        try JSONEncoder().encode(measured).write(to: URL(fileURLWithPath: output.path + ".json"))
    }
}
