import Foundation

/// diffusers' LCMScheduler (Latent Consistency Models, Luo et al. 2023): the few-step sampler of
/// LCM-distilled checkpoints and LCM-LoRA. Its timesteps are `steps` evenly spaced indices into
/// the distillation schedule (`original_inference_steps` timesteps, k = T / original apart,
/// ending at k - 1); each step maps the sample to the consistency function's clean estimate
/// c_out x0 + c_skip x_t and, except after the last, noises it again to the next timestep with
/// fresh noise.
struct LCMScheduler: Sendable {
    let schedule: TrainingSchedule
    let predictionType: PredictionType
    let finalAlphaCumulative: Float
    let originalSteps: Int
    let timestepScaling: Float
    let clipSample: Float?

    init(_ config: ModelConfig) throws {
        schedule = try TrainingSchedule(config)
        predictionType = try TrainingSchedule.predictionType(config)
        finalAlphaCumulative = try config.bool("set_alpha_to_one", default: true) ? 1 : schedule.alphasCumulative[0]
        originalSteps = try config.size("original_inference_steps", default: 50)
        timestepScaling = Float(try config.double("timestep_scaling", default: 10))
        clipSample = try config.bool("clip_sample", default: false) ? Float(try config.double("clip_sample_range", default: 1)) : nil
        guard originalSteps <= schedule.trainTimesteps else {
            throw ModelDirectoryError(path: config.file.path, problem: "has original_inference_steps \(originalSteps) over num_train_timesteps \(schedule.trainTimesteps)",
                                      fix: "use original_inference_steps of at most \(schedule.trainTimesteps) (50 for LCM checkpoints)")
        }
        if try config.bool("thresholding", default: false) {
            throw ModelDirectoryError(path: config.file.path, problem: "asks for dynamic thresholding (thresholding: true), which LCMScheduler runs here without",
                                      fix: "set thresholding to false, or clip_sample for a fixed range")
        }
    }

    /// The distillation schedule's timesteps, descending: (original ... 1) * k - 1.
    var originTimesteps: [Int] {
        let k = schedule.trainTimesteps / originalSteps
        return (1...originalSteps).reversed().map { $0 * k - 1 }
    }

    /// The timesteps of a `steps`-step run: floor(linspace(0, original, steps, endpoint: no)).
    func timesteps(steps: Int) -> [Int] {
        let origin = originTimesteps
        return (0..<steps).map { origin[Int((Double(origin.count) * Double($0) / Double(steps)).rounded(.down))] }
    }

    /// diffusers refuses more steps than the distillation schedule has.
    func supports(steps: Int) -> Bool { steps >= 1 && steps <= originalSteps }

    func start(steps: Int) -> LCMRun { LCMRun(scheduler: self, integerTimesteps: timesteps(steps: steps)) }

    /// The consistency function's boundary scalings at `timestep` (sigma_data = 0.5).
    func boundaryScalings(_ timestep: Int) -> (skip: Float, out: Float) {
        let scaled = Double(timestep) * Double(timestepScaling), data = 0.25
        return (Float(data / (scaled * scaled + data)), Float(scaled / (scaled * scaled + data).squareRoot()))
    }
}

/// One LCM run: stochastic between steps (fresh noise after every step but the last), so that
/// one seed gives one image.
struct LCMRun: SchedulerRun {
    let scheduler: LCMScheduler
    let integerTimesteps: [Int]

    var timesteps: [Float] { integerTimesteps.map(Float.init) }
    var initialNoiseSigma: Float { 1 }
    var drawsNoise: Bool { true }

    /// No noise is drawn after the last step (the generator is left where diffusers leaves it).
    func drawsNoise(atStep step: Int) -> Bool { step < integerTimesteps.count - 1 }

    func scaleInput(_ sample: Tensor, step: Int) -> Tensor { sample }

    func step(_ output: Tensor, step: Int, sample: Tensor) -> Tensor {
        self.step(output, step: step, sample: sample, noise: nil)
    }

    func step(_ output: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let alphas = scheduler.schedule.alphasCumulative
        let timestep = integerTimesteps[i]
        let previous = i + 1 < integerTimesteps.count ? integerTimesteps[i + 1] : timestep
        let alpha = alphas[timestep]
        let alphaPrevious = previous >= 0 ? alphas[previous] : scheduler.finalAlphaCumulative
        let (skip, out) = scheduler.boundaryScalings(timestep)
        var original = scheduler.predictionType.originalSample(output, sample: sample, alphaCumulative: alpha)
        if let clip = scheduler.clipSample { original = original.mapElements { min(max($0, -clip), clip) } }
        let denoised = original.zipElements(sample) { out * $0 + skip * $1 }
        guard i < integerTimesteps.count - 1, let noise else { return denoised }
        let c = alphaPrevious.squareRoot(), d = (1 - alphaPrevious).squareRoot()
        return denoised.zipElements(noise) { c * $0 + d * $1 }
    }
}
