import Foundation

/// What the denoiser predicts.
public enum PredictionType: String, Sendable {
    case epsilon
    case velocity = "v_prediction"
    case sample
}

/// diffusers' DDIMScheduler (deterministic, eta = 0), from scheduler_config.json, including the
/// inversion step x_t -> x_{t+1} that real-image editing starts from.
public struct DDIMScheduler: Sendable {
    public let trainTimesteps: Int
    public let predictionType: PredictionType
    /// cumulative products of (1 - beta), as diffusers stores them (Float32, accumulated in Double).
    public let alphasCumulative: [Float]
    /// Used for the step past t = 0.
    public let finalAlphaCumulative: Float
    public let timestepSpacing: String
    public let stepsOffset: Int
    public let clipSample: Float?

    public init(_ config: ModelConfig) throws {
        let file = config.file.path
        trainTimesteps = try config.int("num_train_timesteps", default: 1000)
        let schedule = try config.string("beta_schedule", default: "linear")
        let start = try config.double("beta_start", default: 0.0001), end = try config.double("beta_end", default: 0.02)
        let betas: [Float]
        switch schedule {
        case "linear":
            betas = Self.linspace(Float(start), Float(end), trainTimesteps)
        case "scaled_linear":
            betas = Self.linspace(Float(start.squareRoot()), Float(end.squareRoot()), trainTimesteps).map { $0 * $0 }
        case "squaredcos_cap_v2":
            betas = Self.cosineBetas(trainTimesteps)
        default:
            throw ModelDirectoryError(path: file, problem: "has beta_schedule '\(schedule)'", fix: "use linear, scaled_linear or squaredcos_cap_v2")
        }
        if config.contains("trained_betas") {
            throw ModelDirectoryError(path: file, problem: "sets trained_betas", fix: "set it to null and name the schedule in beta_schedule (explicit betas are not supported)")
        }
        if try config.bool("rescale_betas_zero_snr", default: false) {
            throw ModelDirectoryError(path: file, problem: "sets rescale_betas_zero_snr", fix: "set it to false (not supported)")
        }
        if try config.bool("thresholding", default: false) {
            throw ModelDirectoryError(path: file, problem: "sets thresholding", fix: "set it to false (dynamic thresholding is not supported)")
        }
        var product = 1.0
        alphasCumulative = betas.map { beta in
            product *= Double(1 - beta)
            return Float(product)
        }
        finalAlphaCumulative = try config.bool("set_alpha_to_one", default: true) ? 1 : alphasCumulative[0]
        let prediction = try config.string("prediction_type", default: "epsilon")
        guard let type = PredictionType(rawValue: prediction) else {
            throw ModelDirectoryError(path: file, problem: "has prediction_type '\(prediction)'", fix: "use epsilon, v_prediction or sample")
        }
        predictionType = type
        timestepSpacing = try config.string("timestep_spacing", default: "leading")
        guard ["leading", "trailing", "linspace"].contains(timestepSpacing) else {
            throw ModelDirectoryError(path: file, problem: "has timestep_spacing '\(timestepSpacing)'", fix: "use leading, trailing or linspace")
        }
        stepsOffset = try config.int("steps_offset", default: 0)
        clipSample = try config.bool("clip_sample", default: true) ? Float(try config.double("clip_sample_range", default: 1)) : nil
    }

    /// torch.linspace in Float32: the first half counted up from the start, the second down from the end.
    static func linspace(_ start: Float, _ end: Float, _ count: Int) -> [Float] {
        guard count > 1 else { return [start] }
        let step = (end - start) / Float(count - 1)
        return (0..<count).map { i in i < count / 2 ? start + step * Float(i) : end - step * Float(count - i - 1) }
    }

    /// The squared-cosine schedule (Nichol & Dhariwal), in Double like diffusers, capped at 0.999.
    static func cosineBetas(_ count: Int) -> [Float] {
        func alphaBar(_ t: Double) -> Double { pow(cos((t + 0.008) / 1.008 * Double.pi / 2), 2) }
        return (0..<count).map { i in
            Float(min(1 - alphaBar(Double(i + 1) / Double(count)) / alphaBar(Double(i) / Double(count)), 0.999))
        }
    }

    /// The descending timesteps of a `steps`-step run.
    public func timesteps(steps: Int) -> [Int] {
        precondition(steps >= 1 && steps <= trainTimesteps, "steps must be in 1...\(trainTimesteps)")
        switch timestepSpacing {
        case "linspace":
            let last = Double(trainTimesteps - 1)
            return (0..<steps).map { i in
                Int((steps == 1 ? 0 : last * Double(i) / Double(steps - 1)).rounded(.toNearestOrEven))
            }.reversed()
        case "trailing":
            // diffusers counts ceil(T / ratio) entries, which floating point makes steps + 1 for
            // some step counts (61, 103, ...), the extra one being timestep -1; take `steps`.
            let ratio = Double(trainTimesteps) / Double(steps)
            return (0..<steps).map { Int((Double(trainTimesteps) - Double($0) * ratio).rounded(.toNearestOrEven)) - 1 }
        default:
            let ratio = trainTimesteps / steps
            return (0..<steps).map { $0 * ratio + stepsOffset }.reversed()
        }
    }

    /// Whether a `steps`-step run stays on trained timesteps: leading spacing with a
    /// `steps_offset` leaves them when the steps come close to `num_train_timesteps`.
    public func supports(steps: Int) -> Bool {
        guard steps >= 1, steps <= trainTimesteps else { return false }
        return timesteps(steps: steps).allSatisfy { (0..<trainTimesteps).contains($0) }
    }

    /// The largest step count `supports` accepts.
    public var maximumSteps: Int {
        (1...trainTimesteps).last(where: supports) ?? 1
    }

    /// The clean sample and the noise implied by a model output at timestep t.
    func decompose(_ output: Tensor, sample: Tensor, alpha: Float) -> (original: Tensor, noise: Tensor) {
        let a = alpha.squareRoot(), b = (1 - alpha).squareRoot()
        var original: Tensor, noise: Tensor
        switch predictionType {
        case .epsilon:
            original = sample.zipElements(output) { (($0 - b * $1) / a) }
            noise = output
        case .velocity:
            original = sample.zipElements(output) { a * $0 - b * $1 }
            noise = output.zipElements(sample) { a * $0 + b * $1 }
        case .sample:
            original = output
            noise = sample.zipElements(output) { ($0 - a * $1) / b }
        }
        if let clipSample { original = original.mapElements { min(max($0, -clipSample), clipSample) } }
        return (original, noise)
    }

    /// One denoising step from `timestep` to the previous one of a `steps`-step run (eta = 0).
    public func step(_ output: Tensor, timestep: Int, sample: Tensor, steps: Int) -> Tensor {
        let previous = timestep - trainTimesteps / steps
        let alpha = alphasCumulative[timestep]
        let alphaPrevious = previous >= 0 ? alphasCumulative[previous] : finalAlphaCumulative
        let (original, noise) = decompose(output, sample: sample, alpha: alpha)
        let a = alphaPrevious.squareRoot(), direction = (1 - alphaPrevious).squareRoot()
        return original.zipElements(noise) { a * $0 + direction * $1 }
    }

    /// One inversion step (x_t -> x_{t+1}) as in Prompt-to-Prompt's null-text notebook: the
    /// output is evaluated at `timestep` (the next, noisier one), the current sample sits one
    /// step before it.
    public func inversionStep(_ output: Tensor, timestep: Int, sample: Tensor, steps: Int) -> Tensor {
        let current = min(timestep - trainTimesteps / steps, trainTimesteps - 1)
        let alpha = current >= 0 ? alphasCumulative[current] : finalAlphaCumulative
        let alphaNext = alphasCumulative[timestep]
        let (original, noise) = decompose(output, sample: sample, alpha: alpha)
        let a = alphaNext.squareRoot(), direction = (1 - alphaNext).squareRoot()
        return original.zipElements(noise) { a * $0 + direction * $1 }
    }

    /// x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise, the forward process (noise augmentation).
    public func addNoise(_ original: Tensor, noise: Tensor, timestep: Int) -> Tensor {
        let alpha = alphasCumulative[timestep]
        let a = alpha.squareRoot(), b = (1 - alpha).squareRoot()
        return original.zipElements(noise) { a * $0 + b * $1 }
    }
}
