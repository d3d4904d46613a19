import ArgumentParser
import EditContract
import Engine
import Foundation
import Imaging

/// Text to image per denoising step, `ptp generate` against diffusers' pipeline, each in fp32
/// and bf16, timed as users run them: whole processes, a short and a long run, the difference
/// divided by the extra steps so that loading, encoding and decoding cancel.
struct PipelineBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Seconds per denoising step of `ptp generate` and of diffusers' StableDiffusionPipeline, fp32 and bf16, and how far each side's bf16 image is from its fp32 one.",
        discussion: """
            Each side runs as a separate process for --short-steps and --long-steps steps; per step = \
            (t(long) - t(short)) / (long - short), each t the fastest of --repeats runs. The PyTorch side runs reference/bench_pipeline.py with the Python \
            given by --python (default: scripts/python-env), with torch.bfloat16 weights for bf16. Images of the long \
            runs are compared by PSNR (bf16 against fp32 on each side, and Swift fp32 against PyTorch fp32).
            """)

    @Option(help: "Model directory (a diffusers StableDiffusionPipeline folder).")
    var model: String

    @Option(help: "Prompt.")
    var prompt = "a photograph of an astronaut riding a horse"

    @Option(help: "Seed.")
    var seed: UInt64 = 1

    @Option(help: "Image side in pixels.")
    var size = 512

    @Option(help: "Steps of the short run.")
    var shortSteps = 2

    @Option(help: "Steps of the long run.")
    var longSteps = 5

    @Option(help: "Runs of each process; the fastest counts (this machine's speed drifts from minute to minute).")
    var repeats = 1

    @Option(help: "Threads for both sides.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Precisions (repeat; default: fp32 and, where the CPU runs it, bf16).")
    var precision: [Precision] = []

    @Option(help: "Scheduler for both sides: model, dpm++-karras or euler.")
    var scheduler = "model"

    @Option(help: "Python interpreter with torch and diffusers (default: from scripts/python-env).")
    var python: String?

    @Flag(help: "Skip the PyTorch side.")
    var swiftOnly = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard shortSteps >= 1, longSteps > shortSteps else { throw ValidationError("--long-steps must exceed --short-steps, both at least 1") }
        guard ["model", "dpm++-karras", "euler"].contains(scheduler) else { throw ValidationError("--scheduler: use model, dpm++-karras or euler") }
        guard size >= 64, size % 8 == 0, threads >= 1 else { throw ValidationError("--size must be a multiple of 8 from 64; --threads at least 1") }
    }

    struct Side {
        var name: String
        var seconds: [Int: Double] = [:]
        var image: RGBImage?
        var perStep: Double {
            guard let long = seconds.values.max(), let short = seconds.values.min(), seconds.count == 2 else { return .nan }
            return (long - short) / Double(seconds.keys.max()! - seconds.keys.min()!)
        }
    }

    func run() throws {
        let precisions = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : precision
        for precision in precisions { try precision.checkSupported() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let root = PythonPeer.repositoryRoot()
        let interpreter = swiftOnly ? nil : try python ?? PythonPeer.pythonFromEnvironmentScript(root)
        Self.readFiles(under: model)
        var sides: [Side] = []
        for precision in precisions {
            var swift = Side(name: "swift \(precision)")
            var torch = Side(name: "pytorch \(precision)")
            for _ in 0..<repeats {
                for steps in [shortSteps, longSteps] {
                    let ours = directory.appendingPathComponent("swift-\(precision)-\(steps).png")
                    var arguments = ["generate", "--model", model, "--prompt", prompt, "--seed", String(seed), "--steps", String(steps),
                                     "--height", String(size), "--width", String(size), "--threads", String(threads),
                                     "--precision", precision.rawValue, "--output", ours.path]
                    if scheduler != "model" { arguments += ["--scheduler", scheduler] }
                    let swiftSeconds = try Self.time(executable, arguments)
                    swift.seconds[steps] = min(swiftSeconds, swift.seconds[steps] ?? .infinity)
                    if steps == longSteps { swift.image = try PNGCodec.read(ours) }
                    note(String(format: "%@, %d steps: %.2f s", swift.name, steps, swiftSeconds))
                    guard let interpreter else { continue }
                    let theirs = directory.appendingPathComponent("pytorch-\(precision)-\(steps).png")
                    let torchSeconds = try Self.time(URL(fileURLWithPath: interpreter), [
                        root.appendingPathComponent("reference/bench_pipeline.py").path, "--model", model, "--prompt", prompt,
                        "--seed", String(seed), "--steps", String(steps), "--height", String(size), "--width", String(size),
                        "--threads", String(threads), "--dtype", precision == .fp32 ? "float32" : "bfloat16", "--scheduler", scheduler,
                        "--output", theirs.path])
                    torch.seconds[steps] = min(torchSeconds, torch.seconds[steps] ?? .infinity)
                    if steps == longSteps { torch.image = try PNGCodec.read(theirs) }
                    note(String(format: "%@, %d steps: %.2f s", torch.name, steps, torchSeconds))
                }
            }
            sides.append(swift)
            if interpreter != nil { sides.append(torch) }
        }
        var report = [
            "Text to image, \(size)x\(size), \(threads) threads, scheduler \(scheduler), model \(URL(fileURLWithPath: model).lastPathComponent)",
            "CPU: \(CPUDescription.current); \(Engine.oneDNNConfiguration)",
            "side            \(shortSteps) steps (s)  \(longSteps) steps (s)  per step (s)",
        ]
        for side in sides {
            report.append(side.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                + String(format: "%12.2f %12.2f %12.2f", side.seconds[shortSteps] ?? .nan, side.seconds[longSteps] ?? .nan, side.perStep))
        }
        func side(_ name: String) -> Side? { sides.first { $0.name == name } }
        for precision in precisions {
            if let ours = side("swift \(precision)"), let theirs = side("pytorch \(precision)") {
                report.append(String(format: "swift / pytorch per step, %@: %.2f", precision.rawValue, ours.perStep / theirs.perStep))
            }
        }
        for name in ["swift", "pytorch"] {
            if let bf16 = side("\(name) bf16")?.image, let fp32 = side("\(name) fp32")?.image {
                report.append(String(format: "%@: bf16 image against its fp32 image, PSNR %.2f dB", name, Self.psnr(bf16, fp32)))
            }
        }
        if let ours = side("swift fp32")?.image, let theirs = side("pytorch fp32")?.image {
            report.append(String(format: "swift fp32 image against pytorch fp32 image, PSNR %.2f dB", Self.psnr(ours, theirs)))
        }
        print(report.joined(separator: "\n"))
    }

    /// Wall seconds of a whole process, its output to our stderr; fails if it fails.
    /// Reads every file of the model folder once, so that the first timed run does not pay
    /// for the disk and the later ones for the page cache (loading must cancel between runs).
    static func readFiles(under path: String) {
        guard let files = FileManager.default.enumerator(atPath: path) else { return }
        for case let name as String in files {
            guard let handle = FileHandle(forReadingAtPath: path + "/" + name) else { continue }
            while let chunk = try? handle.read(upToCount: 16 << 20), !chunk.isEmpty {}
            try? handle.close()
        }
    }

    static func time(_ executable: URL, _ arguments: [String]) throws -> Double {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = FileHandle.standardError
        process.standardError = FileHandle.nullDevice
        let start = Date()
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandError("\(executable.lastPathComponent) \(arguments.prefix(2).joined(separator: " ")) failed with status \(process.terminationStatus)")
        }
        return Date().timeIntervalSince(start)
    }

    /// PSNR of two 8-bit pictures.
    static func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
        guard a.width == b.width, a.height == b.height else { return .nan }
        var sum = 0.0
        for (x, y) in zip(a.pixels, b.pixels) {
            let d = Double(x) - Double(y)
            sum += d * d
        }
        let mse = sum / Double(a.pixels.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }
}
