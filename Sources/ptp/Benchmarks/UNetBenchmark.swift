import ArgumentParser
import Benchmarks
import EditContract
import Engine
import Foundation

/// One UNet forward in Swift and in PyTorch, in float32 and in bfloat16, on the same weights
/// and inputs, in the same run.
struct UNetBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "One UNet forward in Swift and PyTorch, fp32 and bf16: wall time, ratios, GFLOP/s, peak memory, error against PyTorch fp32.",
        discussion: """
            The model is a diffusers directory, for example the full-size SD 1.5 architecture with random weights \
            written by `$(scripts/python-env) reference/make_sd15.py .cache/sd15-random`, or SDXL's by \
            `reference/make_sdxl.py .cache/sdxl-random` (with --latent 128 for 1024 px). Each side and precision runs \
            in its own process (so peak memory is its own); the PyTorch side runs reference/bench_unet.py with the \
            Python given by --python (default: scripts/python-env), with weights and inputs in torch.bfloat16 for bf16.
            """)

    @Option(help: "Model directory (with unet/).")
    var model: String

    @Option(help: "Batch size.")
    var batch: Int = 2

    @Option(help: "Latent side (64 for 512 px).")
    var latent: Int = 64

    @Option(help: "Threads for both sides.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Timed runs after a warm-up; the best is reported.")
    var repeats: Int = 2

    @Option(help: "Precisions to time (repeat the option; default: fp32 and, where the CPU runs it, bf16).")
    var precision: [Precision] = []

    @Option(help: "Python interpreter with torch and diffusers (default: from scripts/python-env).")
    var python: String?

    @Flag(help: "Skip the PyTorch side.")
    var swiftOnly = false

    @Option(help: ArgumentHelp("Run one Swift side on these inputs and write its output here (used by the parent run).", visibility: .hidden))
    var child: String?

    /// What one run measured (either side).
    struct Run: Codable {
        var seconds: Double
        var gflops: Double
        var peakMiB: Double
        var detail: String
    }

    func validate() throws {
        guard batch >= 1, latent >= 8, threads >= 1, repeats >= 0 else {
            throw ValidationError("--batch and --threads must be at least 1, --latent at least 8, --repeats at least 0")
        }
    }

    func run() throws {
        ComputeThreads.setThreadCount(threads)
        if let child { return try runChild(inputs: child) }
        let precisions = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : precision
        for precision in precisions { try precision.checkSupported() }
        // The sgemm peak first, on a quiet process: every figure is reported against it.
        let peak = KernelReport.measureGEMM(m: 2048, n: 2048, k: 2048, repeats: 5)
        let modelURL = URL(fileURLWithPath: model)
        let component = try ModelDirectory(url: modelURL).component("unet", supportedClasses: ["UNet2DConditionModel"])
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
        note(String(format: "sgemm peak: %.1f GFLOP/s", peak))

        var rows: [(name: String, run: Run, output: Tensor)] = []
        for precision in precisions {
            let saved = directory.appendingPathComponent("swift-\(precision).safetensors")
            try runSelf(["bench", "unet", "--model", model, "--batch", String(batch), "--latent", String(latent), "--threads", String(threads),
                         "--repeats", String(repeats), "--precision", precision.rawValue, "--child", inputs.path + ":" + saved.path])
            rows.append(("swift \(precision)", try JSONDecoder().decode(Run.self, from: Data(contentsOf: URL(fileURLWithPath: saved.path + ".json"))),
                         try SafeTensorsFile(url: saved).tensor("output")))
        }
        if !swiftOnly {
            for (precision, dtype) in [(Precision.fp32, "float32"), (.bf16, "bfloat16")] where precisions.contains(precision) || precision == .fp32 {
                let saved = directory.appendingPathComponent("pytorch-\(precision).safetensors")
                let peer = try PythonPeer.run(script: "reference/bench_unet.py", python: python, arguments: [
                    "--unet", component.directory.path, "--inputs", inputs.path, "--output", saved.path,
                    "--threads", String(threads), "--repeats", String(repeats), "--dtype", dtype])
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
            "UNet forward: batch \(batch), latent \(latent)x\(latent), \(threads) threads, model \(modelURL.lastPathComponent)",
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
        print(report.joined(separator: "\n"))
    }

    /// A child run: load the UNet, time it on the parent's inputs at one precision, save the output.
    private func runChild(inputs argument: String) throws {
        let parts = argument.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let precision = precision.first else { throw ValidationError("--child takes INPUTS:OUTPUT and one --precision") }
        let component = try ModelDirectory(url: URL(fileURLWithPath: model)).component("unet", supportedClasses: ["UNet2DConditionModel"])
        let unet = try UNet2DConditionModel(component: component)
        let inputs = try SafeTensorsFile(url: URL(fileURLWithPath: parts[0]))
        let sample = try inputs.tensor("sample"), context = try inputs.tensor("context")
        let timesteps = try inputs.tensor("timesteps").scalars
        let added = inputs.entries["text_embeds"] == nil ? nil
            : UNetAddedConditions(textEmbeds: try inputs.tensor("text_embeds"), timeIDs: try inputs.tensor("time_ids"))
        var best = Double.infinity, operations = 0
        var output = Tensor.zeros([1])
        for run in 0...repeats {
            OperationCount.total.store(0, ordering: .relaxed)
            let start = Date()
            output = unet(sample, timesteps: timesteps, context: context, added: added, precision: precision)
            let seconds = Date().timeIntervalSince(start)
            operations = OperationCount.total.load(ordering: .relaxed)
            note(String(format: "swift %@ run %d: %.2f s", precision.rawValue, run, seconds))
            if run > 0 || repeats == 0 { best = min(best, seconds) }
        }
        let measured = Run(seconds: best, gflops: Double(operations) / best / 1e9, peakMiB: PeakMemory.selfMiB(), detail: "oneDNN")
        try SafeTensorsWriter.write(["output": output], to: URL(fileURLWithPath: parts[1]))
        try JSONEncoder().encode(measured).write(to: URL(fileURLWithPath: parts[1] + ".json"))
    }

    /// Runs this executable with `arguments`, its output to our stderr, failing if it fails.
    private func runSelf(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = arguments
        process.standardOutput = FileHandle.standardError
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CommandError("the Swift run (\(arguments.joined(separator: " "))) failed with status \(process.terminationStatus)") }
    }
}

/// Runs a script of the repository's reference stack and parses the JSON it prints last.
enum PythonPeer {
    static func run(script: String, python: String?, arguments: [String]) throws -> [String: JSONValue] {
        let root = repositoryRoot()
        let interpreter = try python ?? pythonFromEnvironmentScript(root)
        let (data, status) = try standardOutput(of: URL(fileURLWithPath: interpreter), [root.appendingPathComponent(script).path] + arguments)
        guard status == 0 else { throw CommandError("\(script) failed with status \(status)") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        guard let last = lines.last, let object = (try? JSONValue.parse(Data(last.utf8)))?.objectValue else {
            throw CommandError("\(script) printed no JSON result")
        }
        return object
    }

    /// Runs `executable` to its end: what it printed on standard output, and its exit status.
    static func standardOutput(of executable: URL, _ arguments: [String]) throws -> (Data, Int32) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (data, process.terminationStatus)
    }

    /// The repository this executable was built from (or the working directory).
    static func repositoryRoot() -> URL {
        var folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("Package.swift").path) { return folder }
            folder = folder.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    static func pythonFromEnvironmentScript(_ root: URL) throws -> String {
        let (data, status) = try standardOutput(of: root.appendingPathComponent("scripts/python-env"), [])
        guard status == 0 else { throw CommandError("scripts/python-env could not provide a Python with torch") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The CPU's model name (/proc/cpuinfo), for benchmark reports: figures mean little without it.
enum CPUDescription {
    static var current: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let name = line.split(separator: ":", maxSplits: 1).last
        else { return "unknown CPU" }
        return name.trimmingCharacters(in: .whitespaces)
    }
}
