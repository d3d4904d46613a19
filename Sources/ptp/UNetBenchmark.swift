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

    @Flag(inversion: .prefixedNo, help: """
        When OPENBLAS_CORETYPE is set (by you, or by ptp when OpenBLAS does not know this CPU), also time \
        the Swift side with OpenBLAS's own choice of kernels in a child process, checking its output against \
        the first run's and PyTorch's.
        """)
    var nativeKernels = true

    @Option(help: ArgumentHelp("Write the Swift output and timings here (used by the native-kernel run).", visibility: .hidden))
    var saveOutput: String?

    /// What one Swift run measured.
    struct SwiftRun: Codable {
        var seconds: Double
        var gflops: Double
        var sgemmPeak: Double
        var peakMiB: Double
        var blas: String
    }

    func run() throws {
        ComputeThreads.setThreadCount(threads)
        // The sgemm peak first, on a quiet process: the UNet's figure is reported against it.
        let peak = KernelReport.measureGEMM(m: 2048, n: 2048, k: 2048, repeats: 5)
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
        let measured = SwiftRun(seconds: best, gflops: Double(flops) / best / 1e9, sgemmPeak: peak, peakMiB: PeakMemory.selfMiB(),
                                blas: BLAS.configuration)
        if let saveOutput {
            try SafeTensorsWriter.write(["output": output], to: URL(fileURLWithPath: saveOutput))
            try JSONEncoder().encode(measured).write(to: URL(fileURLWithPath: saveOutput + ".json"))
        }
        func line(_ name: String, _ run: SwiftRun) -> String {
            String(format: "%@ %.2f s  (%.1f GFLOP/s, %.0f%% of sgemm peak %.1f)  peak memory %.0f MiB", name, run.seconds, run.gflops,
                   100 * run.gflops / run.sgemmPeak, run.sgemmPeak, run.peakMiB)
        }
        var report = [
            "UNet forward: batch \(batch), latent \(latent)x\(latent), \(threads) threads, model \(modelURL.lastPathComponent)",
            "BLAS: \(measured.blas)",
            line("swift:  ", measured),
        ]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var reference: Tensor?
        var peerSeconds = Double.nan
        if !swiftOnly {
            let inputs = directory.appendingPathComponent("inputs.safetensors"), outputs = directory.appendingPathComponent("output.safetensors")
            try SafeTensorsWriter.write(["sample": sample, "context": context, "timesteps": Tensor(shape: [batch], values: timesteps)], to: inputs)
            let peer = try PythonPeer.run(script: "reference/bench_unet.py", python: python, arguments: [
                "--unet", component.directory.path, "--inputs", inputs.path, "--output", outputs.path,
                "--threads", String(threads), "--repeats", String(repeats)])
            reference = try SafeTensorsFile(url: outputs).tensor("output")
            peerSeconds = peer["seconds"]?.doubleValue ?? .nan
            report.append(String(format: "pytorch: %.2f s  (torch %@, %d threads)  peak memory %.0f MiB", peerSeconds,
                                 peer["torch"]?.stringValue ?? "?", peer["threads"]?.intValue ?? 0, peer["peak_mib"]?.doubleValue ?? .nan))
            report.append(String(format: "swift / pytorch wall time: %.2f", best / peerSeconds))
            if let reference {
                report.append(String(format: "max abs error: %.3g (output scale %.3g)", output.maxAbsDifference(reference), reference.maxAbs))
            }
        }
        if nativeKernels, saveOutput == nil, ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil {
            report += try nativeKernelRun(directory: directory, output: output, reference: reference, peerSeconds: peerSeconds, line: line)
        }
        print(report.joined(separator: "\n"))
    }

    /// The Swift side again in a child process without OPENBLAS_CORETYPE, its output checked
    /// against this run's and PyTorch's before its time is reported.
    func nativeKernelRun(directory: URL, output: Tensor, reference: Tensor?, peerSeconds: Double,
                         line: (String, SwiftRun) -> String) throws -> [String] {
        let saved = directory.appendingPathComponent("native.safetensors").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.arguments = ["bench", "unet", "--model", model, "--batch", String(batch), "--latent", String(latent),
                             "--threads", String(threads), "--repeats", String(repeats), "--swift-only", "--save-output", saved]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = nil
        environment[OpenBLASCore.choiceVariable] = "none"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CommandError("the native-kernel run failed with status \(process.terminationStatus)") }
        let native = try JSONDecoder().decode(SwiftRun.self, from: Data(contentsOf: URL(fileURLWithPath: saved + ".json")))
        let nativeOutput = try SafeTensorsFile(url: URL(fileURLWithPath: saved)).tensor("output")
        var lines = ["", "again with OpenBLAS's own choice of kernels (BLAS: \(native.blas)):", line("swift:  ", native),
                     String(format: "max abs difference from the first Swift run: %.3g", nativeOutput.maxAbsDifference(output))]
        if let reference {
            lines.append(String(format: "max abs error against pytorch: %.3g", nativeOutput.maxAbsDifference(reference)))
            lines.append(String(format: "swift / pytorch wall time: %.2f", native.seconds / peerSeconds))
        }
        return lines
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
