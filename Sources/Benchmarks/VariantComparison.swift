import EditContract
import Engine
import Foundation

/// Dataset variants per minute on one worker (`ptp bench variants`): one variant of a sampled
/// line in the instruct-pix2pix recipe (both prompts, Euler ancestral with shared noise, the
/// recipe's self-attention sharing, the VAE, CLIP's four similarities) as a worker runs it,
/// against the recipe on PyTorch (`reference/bench_variant.py`) with the same settings, both with
/// their models loaded once. Two step counts give each side's cost per step and per variant
/// apart from its steps; variants per minute are stated at the recipe's 100 steps.
public struct VariantComparison {
    public var model: String
    public var scorer: String
    public var size: Int
    public var shortSteps: Int
    public var longSteps: Int
    /// The steps the per-minute figures are stated at.
    public var recipeSteps: Int
    public var repeats: Int
    public var threads: Int
    public var precision: Precision
    public var python: String?
    public var swiftOnly: Bool
    /// This executable, to find the repository's reference scripts.
    public var executable: URL

    public init(model: String, scorer: String, size: Int, shortSteps: Int, longSteps: Int, recipeSteps: Int, repeats: Int, threads: Int,
                precision: Precision, python: String?, swiftOnly: Bool, executable: URL) {
        (self.model, self.scorer, self.size, self.shortSteps, self.longSteps) = (model, scorer, size, shortSteps, longSteps)
        (self.recipeSteps, self.repeats, self.threads, self.precision) = (recipeSteps, repeats, threads, precision)
        (self.python, self.swiftOnly, self.executable) = (python, swiftOnly, executable)
    }

    /// Seconds of a whole variant at each step count.
    struct Side {
        var name: String
        var seconds: [Int: Double]

        /// (seconds per step, seconds of the rest) from the two step counts.
        var split: (perStep: Double, fixed: Double) {
            let counts = seconds.keys.sorted()
            guard counts.count == 2, let short = seconds[counts[0]], let long = seconds[counts[1]] else { return (.nan, .nan) }
            let perStep = (long - short) / Double(counts[1] - counts[0])
            return (perStep, short - perStep * Double(counts[0]))
        }

        func variantSeconds(steps: Int) -> Double { split.fixed + split.perStep * Double(steps) }
    }

    public func run(report: (String) -> Void) throws {
        try precision.checkSupported()
        let root = PythonPeer.repositoryRoot(of: executable)
        let interpreter = swiftOnly ? nil : try python ?? PythonPeer.pythonFromEnvironmentScript(root)
        report("One dataset variant (instruct-pix2pix recipe: 2 prompts, euler-a with shared noise, self-attention shared for p = 0.5,")
        report("guidance 10, VAE, CLIP scores), \(size)x\(size), \(precision), \(threads) threads, model \(URL(fileURLWithPath: model).lastPathComponent), "
               + "scorer \(URL(fileURLWithPath: scorer).lastPathComponent)")
        report("CPU: \(CPUDescription.current); \(Engine.oneDNNConfiguration)")
        var sides = [try swiftSide()]
        if let interpreter { sides.append(try torchSide(interpreter, root: root)) }
        report("side        \(shortSteps) steps (s)  \(longSteps) steps (s)  per step (s)  rest (s)  at \(recipeSteps) steps: s/variant  variants/min")
        for side in sides {
            let seconds = side.variantSeconds(steps: recipeSteps)
            report(side.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                   + String(format: "%12.2f %12.2f %13.2f %9.2f %24.1f %12.2f", side.seconds[shortSteps] ?? .nan, side.seconds[longSteps] ?? .nan,
                            side.split.perStep, side.split.fixed, seconds, 60 / seconds))
        }
        if sides.count == 2 {
            report(String(format: "swift / pytorch time per variant at %d steps: %.2f (per step %.2f)", recipeSteps,
                          sides[0].variantSeconds(steps: recipeSteps) / sides[1].variantSeconds(steps: recipeSteps),
                          sides[0].split.perStep / sides[1].split.perStep))
        }
    }

    /// The variant as a worker runs it: the line's spec, its variant, the editor, the scorer.
    func swiftSide() throws -> Side {
        let threadsBefore = ComputeThreads.count
        ComputeThreads.setThreadCount(threads)
        defer { ComputeThreads.setThreadCount(threadsBefore) }
        let diffusion = try DiffusionModel(directory: URL(fileURLWithPath: model))
        let clip = try CLIPScorer(directory: URL(fileURLWithPath: scorer))
        let editor = PromptToPromptEditor(model: diffusion)
        var side = Side(name: "swift", seconds: [:])
        // The first variant, untimed: kernels' first-call set-up and the page cache.
        for (steps, timed) in [(shortSteps, false), (shortSteps, true), (longSteps, true)] {
            let line: [String: JSONValue] = [
                "id": .string("bench"), "source": .string(Self.prompts[0]), "targets": .array([.string(Self.prompts[1])]), "seed": .int(1),
                "samples": .int(1), "keep": .int(1), "recipe": .string("instruct-pix2pix"), "vary": .object([:]), "self_replace": .double(0.5), "guidance": .double(10),
                "steps": .int(steps), "height": .int(size), "width": .int(size), "model": .string(model), "scorer": .string(scorer),
                "precision": .string(precision.rawValue),
            ]
            let spec = try EditSpec(json: .object(line))
            for _ in 0..<(timed ? repeats : 1) {
                let start = Date()
                let (variant, _) = spec.variant(0)
                let result = try editor.run(variant)
                _ = try clip.scores(source: result.images[0], edited: result.images[1], sourcePrompt: variant.source, editedPrompt: variant.targets[0])
                let seconds = Date().timeIntervalSince(start)
                guard timed else { continue }
                side.seconds[steps] = min(seconds, side.seconds[steps] ?? .infinity)
                progress(String(format: "swift, %d steps: %.2f s", steps, seconds))
            }
        }
        return side
    }

    func torchSide(_ interpreter: String, root: URL) throws -> Side {
        let result = try PythonPeer.run(script: "reference/bench_variant.py", python: interpreter, arguments: [
            "--model", model, "--scorer", scorer, "--steps", String(shortSteps), String(longSteps), "--size", String(size),
            "--guidance", "10", "--threshold", "0.5", "--threads", String(threads), "--repeats", String(repeats),
            "--dtype", precision == .fp32 ? "float32" : "bfloat16"], root: root)
        guard let seconds = result["seconds"]?.objectValue else { throw BenchmarkError("reference/bench_variant.py printed no seconds") }
        var side = Side(name: "pytorch", seconds: [:])
        for steps in [shortSteps, longSteps] {
            guard let value = seconds[String(steps)]?.doubleValue else { throw BenchmarkError("reference/bench_variant.py gave no time for \(steps) steps") }
            side.seconds[steps] = value
            progress(String(format: "pytorch, %d steps: %.2f s", steps, value))
        }
        return side
    }

    /// The recipe's kind of caption pair.
    static let prompts = ["a photograph of a red car parked on a street", "a photograph of a blue car parked on a street"]
}
