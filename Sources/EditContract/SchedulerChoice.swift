import Foundation

/// Which scheduler a run asks for: a diffusers class (or a short name for one) and config
/// values to override, applied to the model's scheduler_config.json as diffusers'
/// `SomeScheduler.from_config(config, **overrides)`. Written `NAME[,key=value...]`, for example
/// `dpm++-karras`, `euler`, or `DPMSolverMultistepScheduler,solver_order=3`.
public struct SchedulerChoice: Sendable, Equatable, CustomStringConvertible {
    /// diffusers' class names of the schedulers the Engine implements.
    public static let classNames = ["DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
                                    "LCMScheduler"]
    /// The classes among them that add fresh noise between steps.
    public static let ancestralClassNames: Set<String> = ["EulerAncestralDiscreteScheduler", "LCMScheduler"]

    public var className: String
    public var overrides: [String: JSONValue]

    public init(className: String, overrides: [String: JSONValue] = [:]) {
        self.className = className
        self.overrides = overrides
    }

    /// Short names: DPM-Solver++ (2M unless solver_order says otherwise), Euler, DDIM, with
    /// `-karras` for Karras sigmas, Euler ancestral (`euler-a`), and LCM's (`lcm`, for
    /// LCM-distilled UNets and LCM-LoRA).
    static let shortNames: [String: SchedulerChoice] = [
        "ddim": .init(className: "DDIMScheduler"),
        "dpm++": .init(className: "DPMSolverMultistepScheduler"),
        "dpm++-karras": .init(className: "DPMSolverMultistepScheduler", overrides: ["use_karras_sigmas": .bool(true)]),
        "euler": .init(className: "EulerDiscreteScheduler"),
        "euler-karras": .init(className: "EulerDiscreteScheduler", overrides: ["use_karras_sigmas": .bool(true)]),
        "euler-a": .init(className: "EulerAncestralDiscreteScheduler"),
        "lcm": .init(className: "LCMScheduler"),
    ]

    /// Parses `NAME[,key=value...]`; values are JSON (true, 3, 0.5, "trailing") or bare words.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let name = parts[0]
        let names = Self.shortNames.keys.sorted().joined(separator: ", ") + ", " + Self.classNames.joined(separator: ", ")
        if let short = Self.shortNames[name.lowercased()] {
            self = short
        } else if Self.classNames.contains(name) {
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
}
