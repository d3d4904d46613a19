import EditContract
import Engine
import Foundation
import Imaging

/// Text to image per denoising step, `ptp generate` against diffusers' pipeline, each in fp32
/// and bf16, timed as users run them (`ptp bench pipeline`): whole processes, a short and a
/// long run, the difference divided by the extra steps so that loading, encoding and decoding
/// cancel.
public struct PipelineComparison {
    public var model: String
    public var prompt: String
    public var seed: UInt64
    public var size: Int
    public var shortSteps: Int
    public var longSteps: Int
    /// Runs of each process; the fastest counts.
    public var repeats: Int
    public var threads: Int
    public var precisions: [Precision]
    /// model, dpm++-karras or euler, for both sides.
    public var scheduler: String
    public var python: String?
    public var swiftOnly: Bool
    /// This executable (its `generate` is the Swift side).
    public var executable: URL

    public init(model: String, prompt: String, seed: UInt64, size: Int, shortSteps: Int, longSteps: Int, repeats: Int, threads: Int,
                precisions: [Precision], scheduler: String, python: String?, swiftOnly: Bool, executable: URL) {
        (self.model, self.prompt, self.seed, self.size, self.shortSteps, self.longSteps) = (model, prompt, seed, size, shortSteps, longSteps)
        (self.repeats, self.threads, self.precisions, self.scheduler) = (repeats, threads, precisions, scheduler)
        (self.python, self.swiftOnly, self.executable) = (python, swiftOnly, executable)
    }

    struct Side {
        var name: String
        var seconds: [Int: Double] = [:]
        var image: RGBImage?
        var perStep: Double {
            guard let long = seconds.values.max(), let short = seconds.values.min(), let most = seconds.keys.max(), let least = seconds.keys.min(),
                  seconds.count == 2 else { return .nan }
            return (long - short) / Double(most - least)
        }
    }

    /// Runs both sides; returns the report.
    public func run() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let root = PythonPeer.repositoryRoot(of: executable)
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
                    let swiftSeconds = try Processes.run(executable, arguments, quiet: true)
                    swift.seconds[steps] = min(swiftSeconds, swift.seconds[steps] ?? .infinity)
                    if steps == longSteps { swift.image = try PNGCodec.read(ours) }
                    progress(String(format: "%@, %d steps: %.2f s", swift.name, steps, swiftSeconds))
                    guard let interpreter else { continue }
                    let theirs = directory.appendingPathComponent("pytorch-\(precision)-\(steps).png")
                    let torchSeconds = try Processes.run(URL(fileURLWithPath: interpreter), [
                        root.appendingPathComponent("reference/bench_pipeline.py").path, "--model", model, "--prompt", prompt,
                        "--seed", String(seed), "--steps", String(steps), "--height", String(size), "--width", String(size),
                        "--threads", String(threads), "--dtype", precision == .fp32 ? "float32" : "bfloat16", "--scheduler", scheduler,
                        "--output", theirs.path], quiet: true)
                    torch.seconds[steps] = min(torchSeconds, torch.seconds[steps] ?? .infinity)
                    if steps == longSteps { torch.image = try PNGCodec.read(theirs) }
                    progress(String(format: "%@, %d steps: %.2f s", torch.name, steps, torchSeconds))
                }
            }
            sides.append(swift)
            if interpreter != nil { sides.append(torch) }
        }
        return report(sides)
    }

    private func report(_ sides: [Side]) -> String {
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
        return report.joined(separator: "\n")
    }

    /// Reads every file of the model folder once, so that the first timed run does not pay for
    /// the disk and the later ones for the page cache (loading must cancel between runs).
    static func readFiles(under path: String) {
        guard let files = FileManager.default.enumerator(atPath: path) else { return }
        for case let name as String in files {
            guard let handle = FileHandle(forReadingAtPath: path + "/" + name) else { continue }
            while let chunk = try? handle.read(upToCount: 16 << 20), !chunk.isEmpty {}
            try? handle.close()
        }
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
