import Foundation

/// What the denoiser predicts.
enum PredictionType: String, Sendable {
    case epsilon
    case velocity = "v_prediction"
    case sample
}

extension PredictionType {
    /// The clean sample the model's output predicts at noise level `sigma`, for the schedulers
    /// that step in sigma space (Euler, Euler ancestral), as diffusers' `pred_original_sample`.
    func originalSample(_ output: Tensor, sample: Tensor, sigma: Float) -> Tensor {
        switch self {
        case .epsilon:
            return sample.zipElements(output) { $0 - sigma * $1 }
        case .velocity:
            let (a, b) = (-sigma / (sigma * sigma + 1).squareRoot(), sigma * sigma + 1)
            return output.zipElements(sample) { $0 * a + $1 / b }
        case .sample:
            return output
        }
    }

    /// The clean sample the model's output predicts at cumulative alpha `alpha`, for the
    /// schedulers that step in alpha space (DDIM, LCM), as diffusers computes it.
    func originalSample(_ output: Tensor, sample: Tensor, alphaCumulative alpha: Float) -> Tensor {
        let a = alpha.squareRoot(), b = (1 - alpha).squareRoot()
        switch self {
        case .epsilon: return sample.zipElements(output) { ($0 - b * $1) / a }
        case .velocity: return sample.zipElements(output) { a * $0 - b * $1 }
        case .sample: return output
        }
    }
}

/// The noise schedule a model was trained with (`num_train_timesteps` and the betas), shared by
/// every scheduler, computed as diffusers computes it: betas in float32, their cumulative
/// product accumulated in double and stored in float32 (torch.cumprod on the CPU).
struct TrainingSchedule: Sendable {
    let trainTimesteps: Int
    /// alpha-bar_t, t = 0 ..< trainTimesteps.
    let alphasCumulative: [Float]

    init(_ config: ModelConfig) throws {
        let file = config.file.path
        trainTimesteps = try config.size("num_train_timesteps", default: 1000)
        guard trainTimesteps >= 2 else {
            throw ModelDirectoryError(path: file, problem: "sets num_train_timesteps = \(trainTimesteps)", fix: "use the model's training value (1000 for Stable Diffusion)")
        }
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

    /// sigma_t = sqrt((1 - alpha-bar_t) / alpha-bar_t) in float32, t = 0 ..< trainTimesteps: the
    /// noise-to-signal ratio the sigma-based schedulers work in.
    var sigmas: [Float] {
        alphasCumulative.map { ((1 - $0) / $0).squareRoot() }
    }

    /// The prediction type of `config`, named in errors by its file.
    static func predictionType(_ config: ModelConfig, supported: [PredictionType] = [.epsilon, .velocity, .sample]) throws -> PredictionType {
        let name = try config.string("prediction_type", default: "epsilon")
        guard let type = PredictionType(rawValue: name), supported.contains(type) else {
            throw ModelDirectoryError(path: config.file.path, problem: "has prediction_type '\(name)'",
                                      fix: "use \(supported.map(\.rawValue).joined(separator: ", "))")
        }
        return type
    }

    /// The timestep spacing of `config` (`default` as the scheduler class has it).
    static func spacing(_ config: ModelConfig, default fallback: String) throws -> TimestepSpacing {
        let name = try config.string("timestep_spacing", default: fallback)
        guard let spacing = TimestepSpacing(rawValue: name) else {
            throw ModelDirectoryError(path: config.file.path, problem: "has timestep_spacing '\(name)'", fix: "use leading, trailing or linspace")
        }
        return spacing
    }
}

/// How inference timesteps are spread over the training ones (Lin et al. 2023, table 2).
enum TimestepSpacing: String, Sendable {
    case leading, trailing, linspace
}

/// numpy's helpers that the sigma-based schedulers compute their plans with, in Double.
enum NumPy {
    /// np.linspace(start, stop, count): start + i * (stop - start) / (count - 1), the last exactly stop.
    static func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (stop - start) / Double(count - 1)
        return (0..<count).map { $0 == count - 1 ? stop : Double($0) * step + start }
    }

    /// np.arange(start, stop, step) for a negative step: ceil((stop - start) / step) values,
    /// start + i * delta with delta = (start + step) - start, as numpy fills them.
    static func arange(from start: Double, downTo stop: Double, by step: Double) -> [Double] {
        let count = Int(((stop - start) / step).rounded(.up))
        let delta = (start + step) - start
        return (0..<max(count, 0)).map { $0 == 0 ? start : start + Double($0) * delta }
    }

    /// np.interp(x, 0..<values.count, values) at one point.
    static func interpolate(_ x: Double, _ values: [Float]) -> Double {
        guard x > 0 else { return Double(values[0]) }
        guard x < Double(values.count - 1) else { return Double(values[values.count - 1]) }
        let j = Int(x.rounded(.down))
        let slope = (Double(values[j + 1]) - Double(values[j])) / 1
        return slope * (x - Double(j)) + Double(values[j])
    }

    /// The sigma-to-timestep interpolation of diffusers' `_sigma_to_t`, over float32 log sigmas.
    static func timestep(ofSigma sigma: Double, logSigmas: [Float]) -> Double {
        let logSigma = Foundation.log(max(sigma, 1e-10))
        // The last index whose log sigma is at most log(sigma), kept below the final one.
        var low = 0
        for (index, value) in logSigmas.enumerated() where logSigma - Double(value) >= 0 { low = index }
        low = min(low, logSigmas.count - 2)
        let (lower, upper) = (Double(logSigmas[low]), Double(logSigmas[low + 1]))
        let w = min(max((lower - logSigma) / (lower - upper), 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }

    /// Karras et al.'s sigmas: `count` values from sigmaMax to sigmaMin, evenly spaced in sigma^(1/7).
    static func karrasSigmas(minimum: Double, maximum: Double, count: Int) -> [Double] {
        let rho = 7.0
        let (minInverse, maxInverse) = (pow(minimum, 1 / rho), pow(maximum, 1 / rho))
        return linspace(0, 1, count).map { pow(maxInverse + $0 * (minInverse - maxInverse), rho) }
    }
}
