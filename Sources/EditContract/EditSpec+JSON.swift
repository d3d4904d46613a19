import Foundation

extension EditSpec {
    /// Reads one JSON object, refusing unknown keys and ill-typed values with the field's name
    /// and the fix, then checks the values (`validate`).
    public init(json: JSONValue) throws {
        guard let object = json.objectValue else {
            throw EditError(field: "edit", problem: "is not a JSON object", fix: "write one object like {\"id\": \"e1\", \"source\": \"...\", \"targets\": [\"...\"]}")
        }
        var given = Set<Key>()
        for name in object.keys.sorted() {
            guard let key = Key(rawValue: name) else {
                throw EditError(field: name, problem: "is not an edit option", fix: "remove it, or use one of: \(Key.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if object[name] != .null { given.insert(key) }
        }
        let fields = Fields(object: object)

        guard let id = try fields.string(.id), !id.isEmpty else { throw EditError(field: "id", problem: "is missing or empty", fix: "give each edit a unique id") }
        guard let source = try fields.string(.source) else { throw EditError(field: "source", problem: "is missing", fix: "give the source prompt") }
        guard let targetValues = fields[.targets]?.arrayValue, !targetValues.isEmpty else {
            throw EditError(field: "targets", problem: "is missing or empty", fix: "give a list of one or more edited prompts")
        }
        let targets = try targetValues.enumerated().map { index, value -> String in
            guard let text = value.stringValue else { throw EditError(field: "targets[\(index)]", problem: "is not a string", fix: "quote the prompt") }
            return text
        }
        self.init(id: id, source: source, targets: targets)
        negativePrompt = try fields.string(.negativePrompt)
        if let mode = try fields.string(.mode) {
            guard let parsed = EditMode(rawValue: mode) else {
                throw EditError(field: "mode", problem: "'\(mode)' is not a mode", fix: "use one of \(EditMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.mode = parsed
        }
        if let value = fields[.crossReplace] { crossReplace = try CrossReplaceSchedule(json: value) }
        if let value = fields[.selfReplace] { selfReplace = try StepRange(json: value, field: "self_replace") }
        blend = try fields.wordLists(.blend)
        blendSubtract = try fields.wordLists(.blendSubtract)
        if let value = try fields.number(.blendThreshold) { blendThreshold = value }
        if let value = try fields.number(.blendSubtractThreshold) { blendSubtractThreshold = value }
        if let value = try fields.number(.startBlend) { startBlend = value }
        if let value = fields[.reweight] {
            guard let weights = value.objectValue else {
                throw EditError(field: "reweight", problem: "should map words to weights", fix: "write e.g. {\"smiling\": 5}")
            }
            reweight = try weights.mapValues { weight in
                guard let number = weight.doubleValue else {
                    throw EditError(field: "reweight", problem: "weight \(weight) is not a number", fix: "give a number (negative allowed)")
                }
                return number
            }
        }
        spatialReplace = try fields.number(.spatialReplace)
        selfReplaceSide = try fields.integer(.selfReplaceSide)
        if let name = try fields.string(.selfReplaceVariant) {
            guard let variant = SelfReplaceVariant(rawValue: name) else {
                throw EditError(field: "self_replace_variant", problem: "'\(name)' is not a variant",
                                fix: "use one of \(SelfReplaceVariant.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            selfReplaceVariant = variant
        }
        if let name = try fields.string(.ancestralNoise) {
            guard let noise = AncestralNoise(rawValue: name) else {
                throw EditError(field: "ancestral_noise", problem: "'\(name)' is not a way to draw it",
                                fix: "use one of \(AncestralNoise.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            ancestralNoise = noise
        }
        if let value = fields[.seed] {
            guard let seed = value.intValue, seed >= 0 else { throw EditError(field: "seed", problem: "should be a whole number >= 0, found \(value)", fix: "give a seed such as 8888") }
            self.seed = UInt64(seed)
        }
        steps = try fields.integer(.steps)
        guidance = try fields.number(.guidance)
        height = try fields.integer(.height)
        width = try fields.integer(.width)
        model = try fields.string(.model)
        image = try fields.string(.image)
        imageSHA256 = try fields.string(.imageSHA256)
        mask = try fields.string(.mask)
        maskSHA256 = try fields.string(.maskSHA256)
        if let method = try fields.string(.inversion) {
            guard let parsed = InversionMethod(rawValue: method) else {
                throw EditError(field: "inversion", problem: "'\(method)' is not an inversion method", fix: "use one of \(InversionMethod.names)")
            }
            inversion = parsed
        }
        if let name = try fields.string(.precision) {
            guard let parsed = Precision(rawValue: name) else {
                throw EditError(field: "precision", problem: "'\(name)' is not a precision", fix: "use fp32 or bf16")
            }
            precision = parsed
        }
        if let value = fields[.scheduler] { scheduler = try SchedulerChoice(json: value) }
        originalSize = try fields.integerPair(.originalSize, meaning: "[height, width]")
        cropsCoordsTopLeft = try fields.integerPair(.cropsCoordsTopLeft, meaning: "[top, left]")
        if let value = fields[.superResolution] {
            guard let flag = value.boolValue else { throw EditError(field: "super_resolution", problem: "should be true or false", fix: "write true or false") }
            superResolution = flag
        }
        try readSampling(fields, given: given)
        try validate(given: given)
    }

    /// A sampled line's options; a recipe fills what they leave out.
    private mutating func readSampling(_ fields: Fields, given: Set<Key>) throws {
        if let name = try fields.string(.recipe) {
            guard let parsed = EditRecipe(rawValue: name) else {
                throw EditError(field: "recipe", problem: "'\(name)' is not a recipe", fix: "use one of \(EditRecipe.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            recipe = parsed
        }
        guard given.contains(.samples) || recipe != nil else {
            if let key = Self.samplingKeys.sorted(by: { $0.rawValue < $1.rawValue }).first(where: given.contains) {
                throw EditError(field: key.rawValue, problem: "is given without samples", fix: "add \"samples\": N to make N variants of the line, or remove it")
            }
            return
        }
        var plan = SamplingPlan(samples: try fields.integer(.samples) ?? 100)
        if let value = fields[.filter] {
            guard let object = value.objectValue else {
                throw EditError(field: "filter", problem: "should map scores to thresholds", fix: "write e.g. {\"clip_text\": 0.2, \"clip_direction\": 0.2, \"clip_image\": 0.7}")
            }
            for (name, item) in object.sorted(by: { $0.key < $1.key }) {
                guard let key = ScoreFilter.Key(rawValue: name) else {
                    throw EditError(field: "filter.\(name)", problem: "is not a score", fix: "use \(ScoreFilter.Key.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                guard let threshold = item.doubleValue else { throw EditError(field: "filter.\(name)", problem: "should be a number, found \(item)", fix: "give a cosine similarity in [-1, 1]") }
                switch key {
                case .text: plan.filter.text = threshold
                case .direction: plan.filter.direction = threshold
                case .image: plan.filter.image = threshold
                }
            }
        }
        plan.keep = try fields.integer(.keep)
        if let value = fields[.keepRejected] {
            guard let flag = value.boolValue else { throw EditError(field: "keep_rejected", problem: "should be true or false", fix: "write true or false") }
            plan.keepRejected = flag
        }
        if let name = try fields.string(.scorer) { plan.scorer = name == SamplingPlan.noScorer ? nil : name }
        plan.instruction = try fields.string(.instruction)
        sampling = plan
        if let value = fields[.vary] { vary = try VariedValues(json: value) }
        try recipe?.apply(to: &self, given: given)
    }

    /// The spec as JSON: every field it runs with, defaults included, options that do not
    /// apply left out (provenance records and the wire; `init(json:)` reads it back equal).
    public var json: JSONValue {
        var object: [Key: JSONValue] = [
            .id: .string(id), .source: .string(source), .targets: .array(targets.map { .string($0) }),
            .mode: .string(mode.rawValue), .selfReplace: selfReplace.json, .seed: .int(Int(clamping: seed)),
            .superResolution: .bool(superResolution),
        ]
        if mode != .none {
            object[.crossReplace] = crossReplace.json
            if blend != nil {
                object[.blendThreshold] = .double(blendThreshold)
                object[.startBlend] = .double(startBlend)
            }
            if blendSubtract != nil { object[.blendSubtractThreshold] = .double(blendSubtractThreshold) }
        } else {
            object[.selfReplace] = nil
        }
        if let negativePrompt { object[.negativePrompt] = .string(negativePrompt) }
        if let blend { object[.blend] = .array(blend.map { .array($0.map { .string($0) }) }) }
        if let blendSubtract { object[.blendSubtract] = .array(blendSubtract.map { .array($0.map { .string($0) }) }) }
        if !reweight.isEmpty { object[.reweight] = .object(reweight.mapValues { .double($0) }) }
        if let spatialReplace { object[.spatialReplace] = .double(spatialReplace) }
        if let selfReplaceSide { object[.selfReplaceSide] = .int(selfReplaceSide) }
        // Options added later are written only when set, so that older specs read the same.
        if selfReplaceVariant != .promptToPrompt && mode != .none { object[.selfReplaceVariant] = .string(selfReplaceVariant.rawValue) }
        if ancestralNoise != .shared { object[.ancestralNoise] = .string(ancestralNoise.rawValue) }
        if let steps { object[.steps] = .int(steps) }
        if let guidance { object[.guidance] = .double(guidance) }
        if let height { object[.height] = .int(height) }
        if let width { object[.width] = .int(width) }
        if let model { object[.model] = .string(model) }
        if let image {
            object[.image] = .string(image)
            object[.inversion] = .string(inversion.rawValue)
            if let imageSHA256 { object[.imageSHA256] = .string(imageSHA256) }
        }
        if let mask {
            object[.mask] = .string(mask)
            if let maskSHA256 { object[.maskSHA256] = .string(maskSHA256) }
        }
        if precision != .fp32 { object[.precision] = .string(precision.rawValue) }
        if let scheduler { object[.scheduler] = scheduler.json }
        if let originalSize { object[.originalSize] = .array(originalSize.map { .int($0) }) }
        if let cropsCoordsTopLeft { object[.cropsCoordsTopLeft] = .array(cropsCoordsTopLeft.map { .int($0) }) }
        if let sampling {
            object[.samples] = .int(sampling.samples)
            if let keep = sampling.keep { object[.keep] = .int(keep) }
            if !sampling.filter.isEmpty { object[.filter] = sampling.filter.json }
            if sampling.keepRejected { object[.keepRejected] = .bool(true) }
            object[.scorer] = .string(sampling.scorer ?? SamplingPlan.noScorer)
            if let instruction = sampling.instruction { object[.instruction] = .string(instruction) }
            if !vary.isEmpty { object[.vary] = vary.json }
            if let recipe { object[.recipe] = .string(recipe.rawValue) }
        }
        return .object(Dictionary(uniqueKeysWithValues: object.map { ($0.key.rawValue, $0.value) }))
    }
}

/// A spec travels as its JSON object (`json`), and is validated as it is decoded.
extension EditSpec: Codable {
    public init(from decoder: any Decoder) throws {
        try self.init(json: try JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }
}

/// Typed look-ups in a spec's JSON object; `null` counts as absent.
private struct Fields {
    let object: [String: JSONValue]

    subscript(key: EditSpec.Key) -> JSONValue? {
        guard let value = object[key.rawValue], value != .null else { return nil }
        return value
    }

    func string(_ key: EditSpec.Key) throws -> String? {
        guard let value = self[key] else { return nil }
        guard let text = value.stringValue else { throw EditError(field: key.rawValue, problem: "should be a string, found \(value)", fix: "quote it") }
        return text
    }

    func number(_ key: EditSpec.Key) throws -> Double? {
        guard let value = self[key] else { return nil }
        guard let number = value.doubleValue else { throw EditError(field: key.rawValue, problem: "should be a number, found \(value)", fix: "give a number") }
        return number
    }

    func integer(_ key: EditSpec.Key) throws -> Int? {
        guard let value = self[key] else { return nil }
        guard let int = value.intValue else {
            throw EditError(field: key.rawValue, problem: "should be a whole number, found \(value)", fix: "give a whole number")
        }
        return int
    }

    /// Two whole numbers, e.g. [1024, 768].
    func integerPair(_ key: EditSpec.Key, meaning: String) throws -> [Int]? {
        guard let value = self[key] else { return nil }
        let pair = value.arrayValue?.compactMap(\.intValue) ?? []
        guard value.arrayValue?.count == 2, pair.count == 2 else {
            throw EditError(field: key.rawValue, problem: "should be two whole numbers \(meaning), found \(value)", fix: "write e.g. [1024, 1024]")
        }
        return pair
    }

    /// One list of words per prompt; a bare word stands for a list of one.
    func wordLists(_ key: EditSpec.Key) throws -> [[String]]? {
        guard let value = self[key] else { return nil }
        guard let lists = value.arrayValue else {
            throw EditError(field: key.rawValue, problem: "should be one list of words per prompt", fix: "write e.g. [[\"cat\"], [\"dog\"]] (source first)")
        }
        return try lists.enumerated().map { index, item in
            if let word = item.stringValue { return [word] }
            guard let words = item.arrayValue?.compactMap(\.stringValue), words.count == item.arrayValue?.count else {
                throw EditError(field: "\(key.rawValue)[\(index)]", problem: "should be a word or a list of words", fix: "write e.g. [\"cat\"]")
            }
            return words
        }
    }
}
