import Foundation

/// diffusers' EulerDiscreteScheduler (Karras et al. 2022, algorithm 2, without churn): Euler
/// steps in sigma, the input scaled by 1 / sqrt(sigma^2 + 1), plain (linearly interpolated) or
/// Karras sigmas, every timestep spacing, the final sigma zero or sigma_min. Timesteps may be
/// fractional, as diffusers passes them to the UNet.
struct EulerDiscreteScheduler: Sendable {
    let schedule: TrainingSchedule
    let predictionType: PredictionType
    let karrasSigmas: Bool
    let sigmaMinimum: Double?
    let sigmaMaximum: Double?
    let timestepSpacing: TimestepSpacing
    let stepsOffset: Int
    let finalSigmaIsZero: Bool

    init(_ config: ModelConfig) throws {
        let file = config.file.path
        schedule = try TrainingSchedule(config)
        predictionType = try TrainingSchedule.predictionType(config)
        karrasSigmas = try config.bool("use_karras_sigmas", default: false)
        sigmaMinimum = config.contains("sigma_min") ? try config.double("sigma_min") : nil
        sigmaMaximum = config.contains("sigma_max") ? try config.double("sigma_max") : nil
        timestepSpacing = try TrainingSchedule.spacing(config, default: "linspace")
        stepsOffset = try config.int("steps_offset", default: 0)
        let final = try config.string("final_sigmas_type", default: "zero")
        guard final == "zero" || final == "sigma_min" else {
            throw ModelDirectoryError(path: file, problem: "sets final_sigmas_type '\(final)'", fix: "use zero or sigma_min")
        }
        finalSigmaIsZero = final == "zero"
        let interpolation = try config.string("interpolation_type", default: "linear")
        guard interpolation == "linear" else {
            throw ModelDirectoryError(path: file, problem: "sets interpolation_type '\(interpolation)'", fix: "use linear")
        }
        let timestepType = try config.string("timestep_type", default: "discrete")
        guard timestepType == "discrete" else {
            throw ModelDirectoryError(path: file, problem: "sets timestep_type '\(timestepType)'", fix: "use discrete")
        }
        for key in ["use_exponential_sigmas", "use_beta_sigmas"] where try config.bool(key, default: false) {
            throw ModelDirectoryError(path: file, problem: "sets \(key)", fix: "set it to false (only use_karras_sigmas is supported)")
        }
    }

    /// The spaced timesteps of a `steps`-step plan, as diffusers computes them (float32), or nil
    /// when the spacing gives another count.
    func spacedTimesteps(steps: Int) -> [Float]? {
        Self.spacedTimesteps(steps: steps, trainTimesteps: schedule.trainTimesteps, spacing: timestepSpacing, offset: stepsOffset)
    }

    /// diffusers' Euler schedulers' timesteps (float32) for a spacing, or nil when it gives
    /// another count.
    static func spacedTimesteps(steps: Int, trainTimesteps: Int, spacing: TimestepSpacing, offset stepsOffset: Int) -> [Float]? {
        let timesteps: [Float]
        switch spacing {
        case .linspace:
            timesteps = NumPy.linspace(0, Double(trainTimesteps - 1), steps).map(Float.init).reversed()
        case .leading:
            let ratio = trainTimesteps / steps
            timesteps = (0..<steps).map { Float($0 * ratio + stepsOffset) }.reversed()
        case .trailing:
            let ratio = Double(trainTimesteps) / Double(steps)
            timesteps = NumPy.arange(from: Double(trainTimesteps), downTo: 0, by: -ratio).map { Float($0.rounded(.toNearestOrEven)) - 1 }
        }
        return timesteps.count == steps ? timesteps : nil
    }

    /// Timesteps (for the UNet) and sigmas (one more: the end) of a `steps`-step run.
    func plan(steps: Int) -> (timesteps: [Float], sigmas: [Float])? {
        guard steps >= 1, var timesteps = spacedTimesteps(steps: steps) else { return nil }
        let trainSigmas = schedule.sigmas
        var sigmas = timesteps.map { NumPy.interpolate(Double($0), trainSigmas) }
        if karrasSigmas {
            let logSigmas = trainSigmas.map { Foundation.log($0) }
            sigmas = NumPy.karrasSigmas(minimum: sigmaMinimum ?? sigmas[sigmas.count - 1], maximum: sigmaMaximum ?? sigmas[0], count: steps)
            timesteps = sigmas.map { Float(NumPy.timestep(ofSigma: $0, logSigmas: logSigmas)) }
        }
        let last = finalSigmaIsZero ? 0 : trainSigmas[0]
        return (timesteps, sigmas.map(Float.init) + [last])
    }

    /// Whether a `steps`-step run visits `steps` timesteps within the trained range.
    func supports(steps: Int) -> Bool {
        guard steps >= 1, steps <= schedule.trainTimesteps, let timesteps = spacedTimesteps(steps: steps) else { return false }
        // Karras timesteps are interpolated within the training range.
        return karrasSigmas || timesteps.allSatisfy { $0 >= 0 && $0 <= Float(schedule.trainTimesteps - 1) }
    }

    func start(steps: Int) -> EulerRun {
        guard let plan = plan(steps: steps) else { preconditionFailure("\(steps) steps are not supported; check supports(steps:) first") }
        // The initial noise is scaled to the largest sigma (to sqrt(sigma^2 + 1) with leading spacing).
        let largest = plan.sigmas.max() ?? 1
        let initial = timestepSpacing == .leading ? (largest * largest + 1).squareRoot() : largest
        return EulerRun(predictionType: predictionType, timesteps: plan.timesteps, sigmas: plan.sigmas, initialNoiseSigma: initial)
    }
}

/// One Euler run: x_{i+1} = x_i + (x_i - x0_i) / sigma_i * (sigma_{i+1} - sigma_i).
struct EulerRun: SchedulerRun {
    let predictionType: PredictionType
    let timesteps: [Float]
    let sigmas: [Float]
    let initialNoiseSigma: Float

    func scaleInput(_ sample: Tensor, step: Int) -> Tensor {
        let sigma = sigmas[step]
        let scale = (sigma * sigma + 1).squareRoot()
        return sample.mapElements { $0 / scale }
    }

    mutating func step(_ output: Tensor, step i: Int, sample: Tensor) -> Tensor {
        // No churn: sigma-hat is sigma.
        let sigma = sigmas[i]
        let original = predictionType.originalSample(output, sample: sample, sigma: sigma)
        let dt = sigmas[i + 1] - sigma
        let derivative = sample.zipElements(original) { ($0 - $1) / sigma }
        return sample.zipElements(derivative) { $0 + $1 * dt }
    }
}
