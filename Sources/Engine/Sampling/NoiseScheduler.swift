import EditContract
import Foundation

/// One run of a scheduler: the timesteps the UNet is called at (one call per step, so
/// Prompt-to-Prompt's step fractions mean the same under every scheduler), how its input is
/// scaled, and the update from one sample to the next, which may remember earlier outputs.
protocol SchedulerRun {
    /// The UNet's timestep at each step (fractional for some Euler plans).
    var timesteps: [Float] { get }
    /// The standard deviation the starting noise is scaled to.
    var initialNoiseSigma: Float { get }
    /// The UNet's input at step `step`.
    func scaleInput(_ sample: Tensor, step: Int) -> Tensor
    /// The sample after step `step`, given the (guided) model output for `sample`.
    mutating func step(_ output: Tensor, step: Int, sample: Tensor) -> Tensor
    /// Whether steps add fresh noise (ancestral sampling, LCM).
    var drawsNoise: Bool { get }
    /// Whether step `step` takes fresh noise (LCM's last step does not).
    func drawsNoise(atStep step: Int) -> Bool
    /// The sample after step `step`, with `noise` (the sample's shape, standard normal) for a
    /// scheduler that draws it.
    mutating func step(_ output: Tensor, step: Int, sample: Tensor, noise: Tensor?) -> Tensor
}

extension SchedulerRun {
    var drawsNoise: Bool { false }

    func drawsNoise(atStep step: Int) -> Bool { drawsNoise }

    mutating func step(_ output: Tensor, step: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        self.step(output, step: step, sample: sample)
    }
}

/// The schedulers a sampling run can use, each configured from scheduler_config.json as
/// diffusers configures it.
enum NoiseScheduler: Sendable {
    case ddim(DDIMScheduler)
    case dpmSolverMultistep(DPMSolverMultistepScheduler)
    case eulerDiscrete(EulerDiscreteScheduler)
    case eulerAncestral(EulerAncestralDiscreteScheduler)
    case lcm(LCMScheduler)

    /// diffusers' class names of the schedulers implemented here.
    static let classNames = SchedulerChoice.classNames

    /// The scheduler of class `className` configured from `config` (the model's own values:
    /// betas, spacing, prediction type, with any overrides already merged), as diffusers'
    /// `from_config` does: keys the class does not take are ignored.
    init(className: String, config: ModelConfig) throws {
        switch className {
        case "DDIMScheduler": self = .ddim(try DDIMScheduler(config))
        case "DPMSolverMultistepScheduler": self = .dpmSolverMultistep(try DPMSolverMultistepScheduler(config))
        case "EulerDiscreteScheduler": self = .eulerDiscrete(try EulerDiscreteScheduler(config))
        case "EulerAncestralDiscreteScheduler": self = .eulerAncestral(try EulerAncestralDiscreteScheduler(config))
        case "LCMScheduler": self = .lcm(try LCMScheduler(config))
        default:
            throw ModelDirectoryError(path: config.file.path, problem: "names scheduler class \(className)",
                                      fix: "use one of \(Self.classNames.joined(separator: ", "))")
        }
    }

    var className: String {
        switch self {
        case .ddim: return "DDIMScheduler"
        case .dpmSolverMultistep: return "DPMSolverMultistepScheduler"
        case .eulerDiscrete: return "EulerDiscreteScheduler"
        case .eulerAncestral: return "EulerAncestralDiscreteScheduler"
        case .lcm: return "LCMScheduler"
        }
    }

    var schedule: TrainingSchedule {
        switch self {
        case .ddim(let s): return s.schedule
        case .dpmSolverMultistep(let s): return s.schedule
        case .eulerDiscrete(let s): return s.schedule
        case .eulerAncestral(let s): return s.schedule
        case .lcm(let s): return s.schedule
        }
    }

    /// Whether a `steps`-step run visits exactly `steps` trained timesteps.
    func supports(steps: Int) -> Bool {
        switch self {
        case .ddim(let s): return s.supports(steps: steps)
        case .dpmSolverMultistep(let s): return s.supports(steps: steps)
        case .eulerDiscrete(let s): return s.supports(steps: steps)
        case .eulerAncestral(let s): return s.supports(steps: steps)
        case .lcm(let s): return s.supports(steps: steps)
        }
    }

    /// The largest step count `supports` accepts.
    var maximumSteps: Int {
        (1...schedule.trainTimesteps).last(where: supports) ?? 1
    }

    /// The UNet timesteps of a `steps`-step run.
    func timesteps(steps: Int) -> [Float] { start(steps: steps).timesteps }

    /// A `steps`-step run (check `supports(steps:)` first).
    func start(steps: Int) -> any SchedulerRun {
        switch self {
        case .ddim(let s): return s.start(steps: steps)
        case .dpmSolverMultistep(let s): return s.start(steps: steps)
        case .eulerDiscrete(let s): return s.start(steps: steps)
        case .eulerAncestral(let s): return s.start(steps: steps)
        case .lcm(let s): return s.start(steps: steps)
        }
    }
}

extension SchedulerChoice {
    /// The scheduler this choice makes from a model's scheduler configuration.
    func scheduler(from config: ModelConfig) throws -> NoiseScheduler {
        let merged = ModelConfig(values: config.values.merging(overrides) { _, override in override }, file: config.file)
        do {
            return try NoiseScheduler(className: className, config: merged)
        } catch let error as ModelDirectoryError where !overrides.isEmpty {
            throw EditError(field: "scheduler", problem: "\(self) does not fit this model: \(error.problem)", fix: error.fix)
        }
    }
}
