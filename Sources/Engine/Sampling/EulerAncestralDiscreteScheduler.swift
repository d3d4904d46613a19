import Foundation

/// diffusers' EulerAncestralDiscreteScheduler (k-diffusion's `sample_euler_ancestral`): an Euler
/// step down to sigma_down, then fresh noise scaled by sigma_up, with
/// sigma_up = sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2) and
/// sigma_down = sqrt(sigma_to^2 - sigma_up^2); sigmas linearly interpolated at the spaced
/// timesteps, the last zero. The sampler of the InstructPix2Pix dataset recipe.
struct EulerAncestralDiscreteScheduler: Sendable {
    let schedule: TrainingSchedule
    let predictionType: PredictionType
    let timestepSpacing: TimestepSpacing
    let stepsOffset: Int

    init(_ config: ModelConfig) throws {
        schedule = try TrainingSchedule(config)
        // diffusers' class has no step for a sample prediction.
        predictionType = try TrainingSchedule.predictionType(config, supported: [.epsilon, .velocity])
        timestepSpacing = try TrainingSchedule.spacing(config, default: "linspace")
        stepsOffset = try config.int("steps_offset", default: 0)
    }

    func spacedTimesteps(steps: Int) -> [Float]? {
        EulerDiscreteScheduler.spacedTimesteps(steps: steps, trainTimesteps: schedule.trainTimesteps, spacing: timestepSpacing, offset: stepsOffset)
    }

    /// Whether a `steps`-step run visits `steps` timesteps within the trained range.
    func supports(steps: Int) -> Bool {
        guard steps >= 1, steps <= schedule.trainTimesteps, let timesteps = spacedTimesteps(steps: steps) else { return false }
        return timesteps.allSatisfy { $0 >= 0 && $0 <= Float(schedule.trainTimesteps - 1) }
    }

    func start(steps: Int) -> EulerAncestralRun {
        guard let timesteps = spacedTimesteps(steps: steps) else { preconditionFailure("\(steps) steps are not supported; check supports(steps:) first") }
        let trainSigmas = schedule.sigmas
        let sigmas = timesteps.map { Float(NumPy.interpolate(Double($0), trainSigmas)) } + [0]
        // The initial noise is scaled to the largest sigma (to sqrt(sigma^2 + 1) with leading spacing).
        let largest = sigmas.max() ?? 1
        let initial = timestepSpacing == .leading ? (largest * largest + 1).squareRoot() : largest
        return EulerAncestralRun(predictionType: predictionType, timesteps: timesteps, sigmas: sigmas, initialNoiseSigma: initial)
    }
}

/// One Euler ancestral run (float32 throughout, as diffusers computes it).
struct EulerAncestralRun: SchedulerRun {
    let predictionType: PredictionType
    let timesteps: [Float]
    let sigmas: [Float]
    let initialNoiseSigma: Float

    var drawsNoise: Bool { true }

    func scaleInput(_ sample: Tensor, step: Int) -> Tensor {
        let sigma = sigmas[step]
        let scale = (sigma * sigma + 1).squareRoot()
        return sample.mapElements { $0 / scale }
    }

    func step(_ output: Tensor, step i: Int, sample: Tensor) -> Tensor {
        step(output, step: i, sample: sample, noise: nil)
    }

    func step(_ output: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let sigma = sigmas[i]
        let original = predictionType.originalSample(output, sample: sample, sigma: sigma)
        let (from, to) = (sigma, sigmas[i + 1])
        let up = (to * to * (from * from - to * to) / (from * from)).squareRoot()
        let down = (to * to - up * up).squareRoot()
        let dt = down - sigma
        let derivative = sample.zipElements(original) { ($0 - $1) / sigma }
        let stepped = sample.zipElements(derivative) { $0 + $1 * dt }
        guard let noise else { return stepped }
        return stepped.zipElements(noise) { $0 + $1 * up }
    }
}
