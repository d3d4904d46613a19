import Foundation

/// How the edited prompts' attention relates to the source's.
public enum EditMode: String, Sendable, CaseIterable, Codable {
    /// Word swap: same number of words.
    case replace
    /// Added or removed words: token alignment.
    case refine
    /// The source prompt's own attention, reweighted.
    case reweight
    /// No control: the same seed with the new prompt (the baseline).
    case none
    /// replace when every target has the source's word count, refine otherwise.
    case auto
}

/// cross_replace: one range, or per-word ranges with a default.
public struct CrossReplaceSpec: Sendable, Equatable {
    public var range: StepRange
    public var words: [String: StepRange]

    public init(range: StepRange, words: [String: StepRange] = [:]) {
        self.range = range
        self.words = words
    }
}

/// One edit: a source prompt, its edited versions and the controls. The same object is one
/// line of a cluster batch file. Settings left out come from the model's recommendations.
public struct EditSpec: Sendable, Equatable {
    public var id: String
    public var source: String
    public var targets: [String]
    public var mode: EditMode = .auto
    public var crossReplace = CrossReplaceSpec(range: StepRange(end: 0.8))
    public var selfReplace = StepRange(end: 0.4)
    /// Per prompt (source first), the words whose attention outlines the region to edit.
    public var blend: [[String]]?
    /// Per prompt, words whose region is taken out of the blend mask.
    public var blendSubtract: [[String]]?
    public var blendThreshold: Double = 0.3
    /// Threshold of the (unpooled) subtraction mask.
    public var blendSubtractThreshold: Double = 0.3
    /// Fraction of the steps before blending starts.
    public var startBlend: Double = 0.2
    /// Word -> attention scale for the edited prompts (negative allowed).
    public var reweight: [String: Double] = [:]
    /// Spatial replacement: the edited latents are replaced by the source's for the first
    /// (1 - this) of the steps; nil for none.
    public var spatialReplace: Double?
    /// The largest query grid side that self-attention is injected at; nil for the default
    /// (16 at SD's 64x64 latent, scaled with the latent).
    public var selfReplaceSide: Int?
    public var seed: UInt64 = 0
    public var steps: Int?
    public var guidance: Double?
    public var height: Int?
    public var width: Int?
    /// A model directory; nil for the default (embedded) model.
    public var model: String?
    /// Run the model's super-resolution stage (when it has one).
    public var superResolution = true
    /// A real image to edit (a PNG the source prompt describes), instead of a generated one.
    public var image: String?
    /// How the real image is inverted.
    public var inversion: InversionMethod = .direct
    /// The arithmetic of the models' heavy layers (fp32 unless asked).
    public var precision: Precision = .fp32
    /// The scheduler; nil for the model's own (DDIM for real images, which are inverted with it).
    public var scheduler: SchedulerChoice?

    public init(id: String, source: String, targets: [String]) {
        self.id = id
        self.source = source
        self.targets = targets
    }

    /// Every prompt, source first.
    public var prompts: [String] { [source] + targets }

    static let keys: [String] = ["id", "source", "targets", "mode", "cross_replace", "self_replace", "blend", "blend_subtract",
                                 "blend_threshold", "blend_subtract_threshold", "start_blend", "reweight", "spatial_replace", "self_replace_side", "seed",
                                 "steps", "guidance", "height", "width", "model", "super_resolution", "image", "inversion", "precision", "scheduler"]

    /// Parses one JSON object, refusing unknown keys and ill-typed or out-of-range values with
    /// the field's name and the fix.
    public init(json: JSONValue) throws {
        guard let object = json.objectValue else {
            throw EditError(field: "edit", problem: "is not a JSON object", fix: "write one object like {\"id\": \"e1\", \"source\": \"...\", \"targets\": [\"...\"]}")
        }
        for key in object.keys where !Self.keys.contains(key) {
            throw EditError(field: key, problem: "is not an edit option", fix: "remove it, or use one of: \(Self.keys.joined(separator: ", "))")
        }
        func string(_ key: String) throws -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw EditError(field: key, problem: "should be a string, found \(value)", fix: "quote it") }
            return text
        }
        func number(_ key: String) throws -> Double? {
            guard let value = object[key], value != .null else { return nil }
            guard let number = value.doubleValue, number.isFinite else { throw EditError(field: key, problem: "should be a number, found \(value)", fix: "give a number") }
            return number
        }
        func integer(_ key: String, minimum: Int) throws -> Int? {
            guard let value = object[key], value != .null else { return nil }
            guard let int = value.intValue, int >= minimum else {
                throw EditError(field: key, problem: "should be a whole number >= \(minimum), found \(value)", fix: "give a whole number >= \(minimum)")
            }
            return int
        }
        func wordLists(_ key: String) throws -> [[String]]? {
            guard let value = object[key], value != .null else { return nil }
            guard let lists = value.arrayValue else {
                throw EditError(field: key, problem: "should be one list of words per prompt", fix: "write e.g. [[\"cat\"], [\"dog\"]] (source first)")
            }
            return try lists.enumerated().map { index, item in
                if let word = item.stringValue { return [word] }
                guard let words = item.arrayValue?.compactMap(\.stringValue), words.count == item.arrayValue?.count else {
                    throw EditError(field: "\(key)[\(index)]", problem: "should be a word or a list of words", fix: "write e.g. [\"cat\"]")
                }
                return words
            }
        }

        guard let id = try string("id"), !id.isEmpty else { throw EditError(field: "id", problem: "is missing or empty", fix: "give each edit a unique id") }
        guard id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !id.hasPrefix(".") else {
            throw EditError(field: "id", problem: "'\(id)' is not usable as a folder name", fix: "use letters, digits, '-', '_' and '.' only")
        }
        guard let source = try string("source") else { throw EditError(field: "source", problem: "is missing", fix: "give the source prompt") }
        guard let targetValues = object["targets"]?.arrayValue, !targetValues.isEmpty else {
            throw EditError(field: "targets", problem: "is missing or empty", fix: "give a list of one or more edited prompts")
        }
        let targets = try targetValues.enumerated().map { index, value -> String in
            guard let text = value.stringValue else { throw EditError(field: "targets[\(index)]", problem: "is not a string", fix: "quote the prompt") }
            return text
        }
        self.init(id: id, source: source, targets: targets)
        if let mode = try string("mode") {
            guard let parsed = EditMode(rawValue: mode) else {
                throw EditError(field: "mode", problem: "'\(mode)' is not a mode", fix: "use one of \(EditMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.mode = parsed
        }
        if let value = object["cross_replace"], value != .null { crossReplace = try Self.crossReplace(value) }
        if let value = object["self_replace"], value != .null { selfReplace = try Self.range(value, field: "self_replace") }
        blend = try wordLists("blend")
        blendSubtract = try wordLists("blend_subtract")
        if let value = try number("blend_threshold") {
            guard value >= 0, value <= 1 else { throw EditError(field: "blend_threshold", problem: "\(value) is outside [0, 1]", fix: "give a fraction of the map's maximum, e.g. 0.3") }
            blendThreshold = value
        }
        if let value = try number("blend_subtract_threshold") {
            guard value >= 0, value <= 1 else {
                throw EditError(field: "blend_subtract_threshold", problem: "\(value) is outside [0, 1]", fix: "give a fraction of the map's maximum, e.g. 0.3")
            }
            blendSubtractThreshold = value
        }
        if let value = try number("start_blend") {
            guard value >= 0, value <= 1 else { throw EditError(field: "start_blend", problem: "\(value) is outside [0, 1]", fix: "give a fraction of the steps, e.g. 0.2") }
            startBlend = value
        }
        if let value = object["reweight"], value != .null {
            guard let weights = value.objectValue else {
                throw EditError(field: "reweight", problem: "should map words to weights", fix: "write e.g. {\"smiling\": 5}")
            }
            reweight = try weights.mapValues { weight in
                guard let number = weight.doubleValue, number.isFinite else {
                    throw EditError(field: "reweight", problem: "weight \(weight) is not a number", fix: "give a number (negative allowed)")
                }
                return number
            }
        }
        if let value = try number("spatial_replace") {
            guard value >= 0, value <= 1 else { throw EditError(field: "spatial_replace", problem: "\(value) is outside [0, 1]", fix: "give the fraction of steps left free, e.g. 0.3") }
            spatialReplace = value
        }
        selfReplaceSide = try integer("self_replace_side", minimum: 1)
        if let value = object["seed"], value != .null {
            guard let seed = value.intValue, seed >= 0 else { throw EditError(field: "seed", problem: "should be a whole number >= 0, found \(value)", fix: "give a seed such as 8888") }
            self.seed = UInt64(seed)
        }
        steps = try integer("steps", minimum: 1)
        guidance = try number("guidance")
        if let guidance, guidance < 0 { throw EditError(field: "guidance", problem: "\(guidance) is negative", fix: "use a scale >= 0 (1 disables guidance)") }
        height = try integer("height", minimum: 8)
        width = try integer("width", minimum: 8)
        model = try string("model")
        image = try string("image")
        if let method = try string("inversion") {
            guard let parsed = InversionMethod(rawValue: method) else {
                throw EditError(field: "inversion", problem: "'\(method)' is not an inversion method", fix: "use direct or ddim")
            }
            guard image != nil else { throw EditError(field: "inversion", problem: "is given without an image", fix: "add \"image\": \"photo.png\", or remove it") }
            inversion = parsed
        }
        if let name = try string("precision") {
            guard let parsed = Precision(rawValue: name) else {
                throw EditError(field: "precision", problem: "'\(name)' is not a precision", fix: "use fp32 or bf16")
            }
            precision = parsed
        }
        if let value = object["scheduler"], value != .null { scheduler = try SchedulerChoice(json: value) }
        if let value = object["super_resolution"], value != .null {
            guard let flag = value.boolValue else { throw EditError(field: "super_resolution", problem: "should be true or false", fix: "write true or false") }
            superResolution = flag
        }
        try validateStructure(explicitKeys: Set(object.keys))
    }

    /// A number (a fraction from 0), a [start, end] pair.
    static func range(_ value: JSONValue, field: String) throws -> StepRange {
        let range: StepRange
        if let end = value.doubleValue {
            range = StepRange(end: end)
        } else if let pair = value.arrayValue, pair.count == 2, let start = pair[0].doubleValue, let end = pair[1].doubleValue {
            range = StepRange(start: start, end: end)
        } else {
            throw EditError(field: field, problem: "\(value) is neither a number nor a [start, end] pair",
                            fix: "give a fraction of the steps like 0.8, or a pair like [0, 0.8]")
        }
        try range.validate(field: field)
        return range
    }

    /// A range, or {word: range, "default": range}.
    static func crossReplace(_ value: JSONValue) throws -> CrossReplaceSpec {
        guard let object = value.objectValue else { return CrossReplaceSpec(range: try range(value, field: "cross_replace")) }
        var spec = CrossReplaceSpec(range: StepRange(end: 1))
        for (key, item) in object {
            if key == "default" {
                spec.range = try range(item, field: "cross_replace.default")
            } else {
                spec.words[key] = try range(item, field: "cross_replace.\(key)")
            }
        }
        return spec
    }

    /// Checks that do not need the model.
    func validateStructure(explicitKeys: Set<String>) throws {
        if mode == .none {
            for key in ["cross_replace", "self_replace", "blend", "blend_subtract", "reweight", "start_blend", "blend_threshold",
                        "blend_subtract_threshold", "spatial_replace", "self_replace_side"] where explicitKeys.contains(key) {
                throw EditError(field: key, problem: "has no effect in mode none (the no-control baseline)", fix: "remove it, or choose a mode that uses it")
            }
        }
        if mode == .reweight {
            guard !reweight.isEmpty else {
                throw EditError(field: "reweight", problem: "is empty in mode reweight", fix: "give the words to reweight, e.g. {\"smiling\": 5}")
            }
            for (index, target) in targets.enumerated() where target != source {
                throw EditError(field: "targets[\(index)]", problem: "differs from the source in mode reweight (which reweights the source's own attention)",
                                fix: "repeat the source prompt, or use mode replace/refine/auto with reweight")
            }
        }
        if image != nil, let scheduler, scheduler.className != "DDIMScheduler" {
            throw EditError(field: "scheduler", problem: "is \(scheduler.className), but a real image is inverted and edited with DDIM",
                            fix: "remove scheduler (DDIM is configured from the model's scheduler) or set it to ddim")
        }
        if let blend, blend.count != prompts.count {
            throw EditError(field: "blend", problem: "has \(blend.count) word lists for \(prompts.count) prompts", fix: "give one list per prompt, source first")
        }
        for key in ["blend_threshold", "start_blend"] where blend == nil && explicitKeys.contains(key) {
            throw EditError(field: key, problem: "is given without blend", fix: "give blend words too, or remove it")
        }
        if blendSubtract == nil && explicitKeys.contains("blend_subtract_threshold") {
            throw EditError(field: "blend_subtract_threshold", problem: "is given without blend_subtract", fix: "give blend_subtract words too, or remove it")
        }
        if let blendSubtract {
            guard blend != nil else { throw EditError(field: "blend_subtract", problem: "is given without blend", fix: "give blend words too, or remove it") }
            guard blendSubtract.count == prompts.count else {
                throw EditError(field: "blend_subtract", problem: "has \(blendSubtract.count) word lists for \(prompts.count) prompts", fix: "give one list per prompt, source first")
            }
        }
    }

    /// The mode after `auto` is decided.
    public var resolvedMode: EditMode {
        guard mode == .auto else { return mode }
        let count = PromptWords.split(source).count
        return targets.allSatisfy({ PromptWords.split($0).count == count }) ? .replace : .refine
    }

    /// The spec as JSON (provenance records and the wire).
    public var json: JSONValue {
        func range(_ r: StepRange) -> JSONValue { r.start == 0 ? .double(r.end) : .array([.double(r.start), .double(r.end)]) }
        var object: [String: JSONValue] = [
            "id": .string(id), "source": .string(source), "targets": .array(targets.map { .string($0) }),
            "mode": .string(mode.rawValue), "self_replace": range(selfReplace), "seed": .int(Int(seed)),
            "super_resolution": .bool(superResolution),
        ]
        if mode != .none {
            object["cross_replace"] = crossReplace.words.isEmpty ? range(crossReplace.range)
                : .object(crossReplace.words.mapValues(range).merging(["default": range(crossReplace.range)]) { a, _ in a })
            if blend != nil {
                object["blend_threshold"] = .double(blendThreshold)
                object["start_blend"] = .double(startBlend)
            }
            if blendSubtract != nil { object["blend_subtract_threshold"] = .double(blendSubtractThreshold) }
        } else {
            object["self_replace"] = nil
        }
        if let blend { object["blend"] = .array(blend.map { .array($0.map { .string($0) }) }) }
        if let blendSubtract { object["blend_subtract"] = .array(blendSubtract.map { .array($0.map { .string($0) }) }) }
        if !reweight.isEmpty { object["reweight"] = .object(reweight.mapValues { .double($0) }) }
        if let spatialReplace { object["spatial_replace"] = .double(spatialReplace) }
        if let selfReplaceSide { object["self_replace_side"] = .int(selfReplaceSide) }
        if let steps { object["steps"] = .int(steps) }
        if let guidance { object["guidance"] = .double(guidance) }
        if let height { object["height"] = .int(height) }
        if let width { object["width"] = .int(width) }
        if let model { object["model"] = .string(model) }
        if let image {
            object["image"] = .string(image)
            object["inversion"] = .string(inversion.rawValue)
        }
        if precision != .fp32 { object["precision"] = .string(precision.rawValue) }
        if let scheduler { object["scheduler"] = scheduler.json }
        return .object(object)
    }
}
