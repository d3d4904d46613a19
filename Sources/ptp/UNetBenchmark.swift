import ArgumentParser
import Engine
import Foundation

/// One UNet forward in Swift and in PyTorch on the same weights and inputs, in the same run.
struct UNetBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "One UNet forward in Swift and in PyTorch: max abs error, wall time and ratio, peak memory of each.",
        discussion: """
            The model is a diffusers directory, for example the full-size SD 1.5 architecture with random weights \
            written by `$(scripts/python-env) reference/make_sd15.py .cache/sd15-random`. The PyTorch side runs \
            reference/bench_unet.py with the Python given by --python (default: scripts/python-env).
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

    @Option(help: "Python interpreter with torch and diffusers (default: from scripts/python-env).")
    var python: String?

    @Flag(help: "Skip the PyTorch side.")
    var swiftOnly = false

    func run() throws {
        ComputeThreads.setThreadCount(threads)
        let modelURL = URL(fileURLWithPath: model)
        let component = try ModelDirectory(url: modelURL).component("unet", supportedClasses: ["UNet2DConditionModel"])
        var start = Date()
        let unet = try UNet2DConditionModel(component: component)
        let loadSeconds = Date().timeIntervalSince(start)
        let c = unet.configuration
        var generator = TorchGenerator(seed: 0)
        let sample = generator.normal([batch, c.inChannels, latent, latent])
        let context = generator.normal([batch, 77, c.crossAttentionWidth])
        let timesteps = (0..<batch).map { Float(981 - 20 * $0) }
        let peak = KernelReport.measureGEMM(m: 2048, n: 2048, k: 2048, repeats: 3)
        note(String(format: "sgemm peak: %.1f GFLOP/s; UNet loaded in %.1f s", peak, loadSeconds))

        var best = Double.infinity
        var output = Tensor.zeros([1])
        var flops = 0
        for run in 0...repeats {
            BLAS.operationCount.store(0, ordering: .relaxed)
            start = Date()
            output = unet(sample, timesteps: timesteps, context: context)
            let seconds = Date().timeIntervalSince(start)
            flops = BLAS.operationCount.load(ordering: .relaxed)
            note(String(format: "swift run %d: %.2f s", run, seconds))
            if run > 0 || repeats == 0 { best = min(best, seconds) }
        }
        let swiftPeak = PeakMemory.selfMiB()
        var report = [
            "UNet forward: batch \(batch), latent \(latent)x\(latent), \(threads) threads, model \(modelURL.lastPathComponent)",
            String(format: "swift:   %.2f s  (%.1f GFLOP/s, %.0f%% of sgemm peak %.1f)  peak memory %.0f MiB", best,
                   Double(flops) / best / 1e9, 100 * Double(flops) / best / 1e9 / peak, peak, swiftPeak),
        ]
        if !swiftOnly {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let inputs = directory.appendingPathComponent("inputs.safetensors"), outputs = directory.appendingPathComponent("output.safetensors")
            try SafeTensorsWriter.write(["sample": sample, "context": context, "timesteps": Tensor(shape: [batch], values: timesteps)], to: inputs)
            let peer = try PythonPeer.run(script: "reference/bench_unet.py", python: python, arguments: [
                "--unet", component.directory.path, "--inputs", inputs.path, "--output", outputs.path,
                "--threads", String(threads), "--repeats", String(repeats)])
            let reference = try SafeTensorsFile(url: outputs).tensor("output")
            let seconds = peer["seconds"]?.doubleValue ?? .nan
            report.append(String(format: "pytorch: %.2f s  (torch %@, %d threads)  peak memory %.0f MiB", seconds,
                                 peer["torch"]?.stringValue ?? "?", peer["threads"]?.intValue ?? 0, peer["peak_mib"]?.doubleValue ?? .nan))
            report.append(String(format: "swift / pytorch wall time: %.2f", best / seconds))
            report.append(String(format: "max abs error: %.3g (output scale %.3g)", output.maxAbsDifference(reference), reference.maxAbs))
        }
        print(report.joined(separator: "\n"))
    }
}

/// Runs a script of the repository's reference stack and parses the JSON it prints last.
enum PythonPeer {
    static func run(script: String, python: String?, arguments: [String]) throws -> [String: JSONValue] {
        let root = repositoryRoot()
        let interpreter = try python ?? pythonFromEnvironmentScript(root)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = [root.appendingPathComponent(script).path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CommandError("\(script) failed with status \(process.terminationStatus)") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        guard let last = lines.last, let object = (try? JSONValue.parse(Data(last.utf8)))?.objectValue else {
            throw CommandError("\(script) printed no JSON result")
        }
        return object
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
        let process = Process()
        process.executableURL = root.appendingPathComponent("scripts/python-env")
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CommandError("scripts/python-env could not provide a Python with torch") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
