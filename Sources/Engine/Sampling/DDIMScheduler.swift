import Foundation

/// diffusers' DDIMScheduler (deterministic, eta = 0), from scheduler_config.json, including the
/// inversion step x_t -> x_{t+1} that real-image editing starts from.
struct DDIMScheduler: Sendable {
    let schedule: TrainingSchedule
    let predictionType: PredictionType
    /// Used for the step past t = 0.
    let finalAlphaCumulative: Float
    let timestepSpacing: TimestepSpacing
    let stepsOffset: Int
    let clipSample: Float?

    var trainTimesteps: Int { schedule.trainTimesteps }
    /// Cumulative products of (1 - beta), as diffusers stores them.
    var alphasCumulative: [Float] { schedule.alphasCumulative }

    init(_ config: ModelConfig) throws {
        schedule = try TrainingSchedule(config)
        finalAlphaCumulative = try config.bool("set_alpha_to_one", default: true) ? 1 : schedule.alphasCumulative[0]
        predictionType = try TrainingSchedule.predictionType(config)
        timestepSpacing = try TrainingSchedule.spacing(config, default: "leading")
        stepsOffset = try config.int("steps_offset", default: 0)
        clipSample = try config.bool("clip_sample", default: true) ? Float(try config.double("clip_sample_range", default: 1)) : nil
    }

    /// The descending timesteps of a `steps`-step run.
    func timesteps(steps: Int) -> [Int] {
        precondition(steps >= 1 && steps <= trainTimesteps, "steps must be in 1...\(trainTimesteps)")
        switch timestepSpacing {
        case .linspace:
            let last = Double(trainTimesteps - 1)
            return (0..<steps).map { i in
                Int((steps == 1 ? 0 : last * Double(i) / Double(steps - 1)).rounded(.toNearestOrEven))
            }.reversed()
        case .trailing:
            // diffusers counts ceil(T / ratio) entries, which floating point makes steps + 1 for
            // some step counts (61, 103, ...), the extra one being timestep -1; take `steps`.
            let ratio = Double(trainTimesteps) / Double(steps)
            return (0..<steps).map { Int((Double(trainTimesteps) - Double($0) * ratio).rounded(.toNearestOrEven)) - 1 }
        case .leading:
            let ratio = trainTimesteps / steps
            return (0..<steps).map { $0 * ratio + stepsOffset }.reversed()
        }
    }

    /// Whether a `steps`-step run stays on trained timesteps: leading spacing with a
    /// `steps_offset` leaves them when the steps come close to `num_train_timesteps`.
    func supports(steps: Int) -> Bool {
        guard steps >= 1, steps <= trainTimesteps else { return false }
        return timesteps(steps: steps).allSatisfy { (0..<trainTimesteps).contains($0) }
    }

    /// The largest step count `supports` accepts.
    var maximumSteps: Int {
        (1...trainTimesteps).last(where: supports) ?? 1
    }

    /// The clean sample and the noise implied by a model output at timestep t.
    func decompose(_ output: Tensor, sample: Tensor, alpha: Float, clipping: Bool = true) -> (original: Tensor, noise: Tensor) {
        let a = alpha.squareRoot(), b = (1 - alpha).squareRoot()
        var original = predictionType.originalSample(output, sample: sample, alphaCumulative: alpha)
        let noise: Tensor
        switch predictionType {
        case .epsilon: noise = output
        case .velocity: noise = output.zipElements(sample) { a * $0 + b * $1 }
        case .sample: noise = sample.zipElements(output) { ($0 - a * $1) / b }
        }
        if clipping, let clipSample { original = original.mapElements { min(max($0, -clipSample), clipSample) } }
        return (original, noise)
    }

    /// A `steps`-step run (`supports(steps:)` first).
    func start(steps: Int) -> DDIMRun { DDIMRun(scheduler: self, steps: steps, integerTimesteps: timesteps(steps: steps)) }

    /// One denoising step from `timestep` to the previous one of a `steps`-step run (eta = 0).
    func step(_ output: Tensor, timestep: Int, sample: Tensor, steps: Int) -> Tensor {
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
    func inversionStep(_ output: Tensor, timestep: Int, sample: Tensor, steps: Int) -> Tensor {
        let current = min(timestep - trainTimesteps / steps, trainTimesteps - 1)
        return inversionStep(output, from: current >= 0 ? current : nil, to: timestep, sample: sample)
    }

    /// One inversion step from the sample at timestep `current` (nil: the clean sample, at the
    /// final alpha) to timestep `next`, whose output `output` is.
    func inversionStep(_ output: Tensor, from current: Int?, to next: Int, sample: Tensor) -> Tensor {
        let alpha = current.map { alphasCumulative[$0] } ?? finalAlphaCumulative
        let alphaNext = alphasCumulative[next]
        // Unclipped whatever clip_sample says: the inversion walks away from the picture, and
        // clipping its estimate of the clean sample would pull it back (the notebook does not).
        let (original, noise) = decompose(output, sample: sample, alpha: alpha, clipping: false)
        let a = alphaNext.squareRoot(), direction = (1 - alphaNext).squareRoot()
        return original.zipElements(noise) { a * $0 + direction * $1 }
    }

    /// x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) noise, the forward process (noise augmentation).
    func addNoise(_ original: Tensor, noise: Tensor, timestep: Int) -> Tensor {
        let alpha = alphasCumulative[timestep]
        let a = alpha.squareRoot(), b = (1 - alpha).squareRoot()
        return original.zipElements(noise) { a * $0 + b * $1 }
    }
}

/// One DDIM run: its timesteps; each step depends on the current output only.
struct DDIMRun: SchedulerRun {
    let scheduler: DDIMScheduler
    let steps: Int
    let integerTimesteps: [Int]

    var timesteps: [Float] { integerTimesteps.map(Float.init) }
    var initialNoiseSigma: Float { 1 }

    func scaleInput(_ sample: Tensor, step: Int) -> Tensor { sample }

    mutating func step(_ output: Tensor, step: Int, sample: Tensor) -> Tensor {
        scheduler.step(output, timestep: integerTimesteps[step], sample: sample, steps: steps)
    }
}
