import Foundation

/// One run of a scheduler: the timesteps the UNet is called at (one call per step, so
/// Prompt-to-Prompt's step fractions mean the same under every scheduler), how its input is
/// scaled, and the update from one sample to the next, which may remember earlier outputs.
public protocol SchedulerRun {
    /// The UNet's timestep at each step (fractional for some Euler plans).
    var timesteps: [Float] { get }
    /// The standard deviation the starting noise is scaled to.
    var initialNoiseSigma: Float { get }
    /// The UNet's input at step `step`.
    func scaleInput(_ sample: Tensor, step: Int) -> Tensor
    /// The sample after step `step`, given the (guided) model output for `sample`.
    mutating func step(_ output: Tensor, step: Int, sample: Tensor) -> Tensor
}

/// The schedulers a sampling run can use, each configured from scheduler_config.json as
/// diffusers configures it.
public enum NoiseScheduler: Sendable {
    case ddim(DDIMScheduler)
    case dpmSolverMultistep(DPMSolverMultistepScheduler)
    case eulerDiscrete(EulerDiscreteScheduler)

    /// diffusers' class names of the schedulers implemented here.
    public static let classNames = ["DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler"]

    /// The scheduler of class `className` configured from `config` (the model's own values:
    /// betas, spacing, prediction type, with any overrides already merged), as diffusers'
    /// `from_config` does: keys the class does not take are ignored.
    public init(className: String, config: ModelConfig) throws {
        switch className {
        case "DDIMScheduler": self = .ddim(try DDIMScheduler(config))
        case "DPMSolverMultistepScheduler": self = .dpmSolverMultistep(try DPMSolverMultistepScheduler(config))
        case "EulerDiscreteScheduler": self = .eulerDiscrete(try EulerDiscreteScheduler(config))
        default:
            throw ModelDirectoryError(path: config.file.path, problem: "names scheduler class \(className)",
                                      fix: "use one of \(Self.classNames.joined(separator: ", "))")
        }
    }

    public var className: String {
        switch self {
        case .ddim: return "DDIMScheduler"
        case .dpmSolverMultistep: return "DPMSolverMultistepScheduler"
        case .eulerDiscrete: return "EulerDiscreteScheduler"
        }
    }

    public var schedule: TrainingSchedule {
        switch self {
        case .ddim(let s): return s.schedule
        case .dpmSolverMultistep(let s): return s.schedule
        case .eulerDiscrete(let s): return s.schedule
        }
    }

    /// Whether a `steps`-step run visits exactly `steps` trained timesteps.
    public func supports(steps: Int) -> Bool {
        switch self {
        case .ddim(let s): return s.supports(steps: steps)
        case .dpmSolverMultistep(let s): return s.supports(steps: steps)
        case .eulerDiscrete(let s): return s.supports(steps: steps)
        }
    }

    /// The largest step count `supports` accepts.
    public var maximumSteps: Int {
        (1...schedule.trainTimesteps).last(where: supports) ?? 1
    }

    /// The UNet timesteps of a `steps`-step run.
    public func timesteps(steps: Int) -> [Float] { start(steps: steps).timesteps }

    /// A `steps`-step run (check `supports(steps:)` first).
    public func start(steps: Int) -> any SchedulerRun {
        switch self {
        case .ddim(let s): return s.start(steps: steps)
        case .dpmSolverMultistep(let s): return s.start(steps: steps)
        case .eulerDiscrete(let s): return s.start(steps: steps)
        }
    }
}

/// Which scheduler a run asks for: a diffusers class (or a short name for one) and config
/// values to override, applied to the model's scheduler_config.json as diffusers'
/// `SomeScheduler.from_config(config, **overrides)`. Written `NAME[,key=value...]`, for example
/// `dpm++-karras`, `euler`, or `DPMSolverMultistepScheduler,solver_order=3`.
public struct SchedulerChoice: Sendable, Equatable, CustomStringConvertible {
    public var className: String
    public var overrides: [String: JSONValue]

    public init(className: String, overrides: [String: JSONValue] = [:]) {
        self.className = className
        self.overrides = overrides
    }

    /// Short names: DPM-Solver++ (2M unless solver_order says otherwise), Euler, DDIM, with
    /// `-karras` for Karras sigmas.
    static let shortNames: [String: SchedulerChoice] = [
        "ddim": .init(className: "DDIMScheduler"),
        "dpm++": .init(className: "DPMSolverMultistepScheduler"),
        "dpm++-karras": .init(className: "DPMSolverMultistepScheduler", overrides: ["use_karras_sigmas": .bool(true)]),
        "euler": .init(className: "EulerDiscreteScheduler"),
        "euler-karras": .init(className: "EulerDiscreteScheduler", overrides: ["use_karras_sigmas": .bool(true)]),
    ]

    /// Parses `NAME[,key=value...]`; values are JSON (true, 3, 0.5, "trailing") or bare words.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let name = parts[0]
        let names = Self.shortNames.keys.sorted().joined(separator: ", ") + ", " + NoiseScheduler.classNames.joined(separator: ", ")
        if let short = Self.shortNames[name.lowercased()] {
            self = short
        } else if NoiseScheduler.classNames.contains(name) {
            self.init(className: name)
        } else {
            throw EditError(field: "scheduler", problem: "'\(name)' is not a scheduler", fix: "use one of \(names)")
        }
        for item in parts.dropFirst() {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, !pair[0].isEmpty else {
                throw EditError(field: "scheduler", problem: "'\(item)' is not key=value", fix: "write e.g. \(name),use_karras_sigmas=true")
            }
            overrides[pair[0]] = (try? JSONValue.parse(Data(pair[1].utf8))) ?? .string(pair[1])
        }
    }

    /// A spec's `scheduler`: the string form, or {"_class_name": ..., key: value...}.
    public init(json: JSONValue) throws {
        if let text = json.stringValue { try self.init(parsing: text); return }
        guard var object = json.objectValue, let name = object.removeValue(forKey: "_class_name")?.stringValue else {
            throw EditError(field: "scheduler", problem: "should be a name such as \"dpm++-karras\" or an object with \"_class_name\"",
                            fix: "write e.g. \"euler\" or {\"_class_name\": \"DPMSolverMultistepScheduler\", \"use_karras_sigmas\": true}")
        }
        try self.init(parsing: name)
        overrides.merge(object) { _, new in new }
    }

    /// The JSON form a spec carries.
    public var json: JSONValue {
        .object(overrides.merging(["_class_name": .string(className)]) { current, _ in current })
    }

    public var description: String {
        ([className] + overrides.keys.sorted().map { "\($0)=\(overrides[$0].map(Self.text) ?? "")" }).joined(separator: ",")
    }

    private static func text(_ value: JSONValue) -> String {
        switch value {
        case .string(let s): return s
        case .bool(let b): return String(b)
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        default: return "\(value)"
        }
    }

    /// The scheduler this choice makes from a model's scheduler configuration.
    public func scheduler(from config: ModelConfig) throws -> NoiseScheduler {
        let merged = ModelConfig(values: config.values.merging(overrides) { _, override in override }, file: config.file)
        do {
            return try NoiseScheduler(className: className, config: merged)
        } catch let error as ModelDirectoryError where !overrides.isEmpty {
            throw EditError(field: "scheduler", problem: "\(self) does not fit this model: \(error.problem)", fix: error.fix)
        }
    }
}
