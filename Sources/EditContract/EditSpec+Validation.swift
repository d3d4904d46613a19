extension EditSpec {
    /// Every check that needs no model, for a spec however it was made. `given`: the options
    /// its writer set (a batch line's keys, the flags of `ptp edit`); one that would have no
    /// effect (cross_replace in mode none, start_blend without blend) is refused only then, so
    /// code may switch a spec's mode without clearing its other settings. The model-dependent
    /// checks (words present in prompts, prompt lengths) are the Engine's.
    public func validate(given: Set<Key> = []) throws {
        try Self.validate(id: id)
        guard !targets.isEmpty else { throw EditError(field: "targets", problem: "is missing or empty", fix: "give a list of one or more edited prompts") }
        guard targets.count <= Self.maximumTargets else {
            throw EditError(field: "targets", problem: "has \(targets.count) prompts; one edit denoises at most \(Self.maximumTargets) with its source",
                            fix: "split it into several edits with the same source and seed")
        }
        try crossReplace.validate()
        try selfReplace.validate(field: "self_replace")
        try Self.check(fraction: blendThreshold, field: .blendThreshold, fix: "give a fraction of the map's maximum, e.g. 0.3")
        try Self.check(fraction: blendSubtractThreshold, field: .blendSubtractThreshold, fix: "give a fraction of the map's maximum, e.g. 0.3")
        try Self.check(fraction: startBlend, field: .startBlend, fix: "give a fraction of the steps, e.g. 0.2")
        for (word, weight) in reweight.sorted(by: { $0.key < $1.key }) where !weight.isFinite {
            throw EditError(field: "reweight", problem: "weight \(weight) of '\(word)' is not a number", fix: "give a number (negative allowed)")
        }
        if let spatialReplace { try Self.check(fraction: spatialReplace, field: .spatialReplace, fix: "give the fraction of steps left free, e.g. 0.3") }
        try Self.check(selfReplaceSide, in: 1...Self.maximumGridSide, field: .selfReplaceSide)
        try Self.check(steps, minimum: 1, field: .steps)
        if let guidance {
            guard guidance.isFinite else { throw EditError(field: "guidance", problem: "should be a number, found \(guidance)", fix: "give a number") }
            guard guidance >= 0 else { throw EditError(field: "guidance", problem: "\(guidance) is negative", fix: "use a scale >= 0 (1 disables guidance)") }
        }
        try Self.check(height, in: 8...Self.maximumImageSide, field: .height)
        try Self.check(width, in: 8...Self.maximumImageSide, field: .width)
        guard seed <= UInt64(Int.max) else {
            throw EditError(field: "seed", problem: "\(seed) is too large", fix: "give a seed from 0 to \(Int.max)")
        }
        for (key, pair, smallest) in [(Key.originalSize, originalSize, 1), (.cropsCoordsTopLeft, cropsCoordsTopLeft, 0)] {
            guard let pair else { continue }
            guard pair.count == 2, pair.allSatisfy({ (smallest...Self.maximumConditioningSize).contains($0) }) else {
                throw EditError(field: key.rawValue, problem: "\(pair) is not two numbers from \(smallest) to \(Self.maximumConditioningSize)",
                                fix: key == .originalSize ? "give [height, width] in pixels, e.g. [1024, 1024]" : "give [top, left] in pixels, e.g. [0, 0]")
            }
        }
        for (key, digest, file) in [(Key.imageSHA256, imageSHA256, image), (.maskSHA256, maskSHA256, mask)] {
            guard let digest else { continue }
            let named = key == .imageSHA256 ? "image" : "mask"
            guard file != nil else {
                throw EditError(field: key.rawValue, problem: "is given without \(named == "image" ? "an image" : "a mask")", fix: "remove it (ptp submit sets it from the \(named) it reads)")
            }
            guard PictureDigest.isWellFormed(digest) else {
                throw EditError(field: key.rawValue, problem: "is not 64 lowercase hexadecimal digits", fix: "remove it (ptp submit sets it from the \(named) it reads)")
            }
        }
        if mask != nil && sampling != nil {
            throw EditError(field: "mask", problem: "is given on a sampled line", fix: "remove samples, or remove mask")
        }
        if given.contains(.inversion) && image == nil {
            throw EditError(field: "inversion", problem: "is given without an image", fix: "add \"image\": \"photo.png\", or remove it")
        }
        try validateStructure(given: given)
        try validateSampling(given: given)
    }

    /// The schedulers a real image is edited with: DDIM, or DPM-Solver++ (its inversion runs at
    /// the same timesteps).
    public static let realImageSchedulers: Set<String> = ["DDIMScheduler", "DPMSolverMultistepScheduler"]

    /// A sampled line's options, and how they fit the rest.
    private func validateSampling(given: Set<Key>) throws {
        guard let sampling else {
            if !vary.isEmpty { throw EditError(field: "vary", problem: "is given without samples", fix: "add \"samples\": N, or remove it") }
            return
        }
        try sampling.validate()
        if sampling.scorer != nil && targets.count != 1 {
            throw EditError(field: "targets", problem: "has \(targets.count) prompts, but CLIP scores a pair (the source and one target)",
                            fix: "give one target per sampled line, or \"scorer\": \"none\"")
        }
        if sampling.scorer == SamplingPlan.defaultScorer, model != nil, !given.contains(.scorer) {
            throw EditError(field: "scorer", problem: "defaults to the embedded model's CLIP, which knows only the shapes world, but the line runs \(model ?? "")",
                            fix: "name the CLIP model your workers load with --scorer (e.g. a clip-vit-large-patch14 folder), or \"scorer\": \"none\"")
        }
        if image != nil {
            throw EditError(field: "samples", problem: "makes variants of a generated pair, but the line edits a real image",
                            fix: "remove samples, or remove image")
        }
        if mode == .none {
            for key in [VariedValues.Key.selfReplace, .crossReplace] where vary[key] != nil {
                throw EditError(field: "vary.\(key.rawValue)", problem: "has no effect in mode none (the no-control baseline)", fix: "remove it, or choose a mode that uses it")
            }
        }
    }

    /// How the options fit together.
    private func validateStructure(given: Set<Key>) throws {
        if mode == .none {
            let uncontrolled: [Key] = [.crossReplace, .selfReplace, .blend, .blendSubtract, .reweight, .startBlend, .blendThreshold,
                                       .blendSubtractThreshold, .spatialReplace, .selfReplaceSide, .selfReplaceVariant]
            for key in uncontrolled where given.contains(key) {
                throw EditError(field: key.rawValue, problem: "has no effect in mode none (the no-control baseline)", fix: "remove it, or choose a mode that uses it")
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
        if selfReplaceVariant == .instructPix2Pix && given.contains(.selfReplaceSide) {
            throw EditError(field: "self_replace_side", problem: "has no effect with self_replace_variant instruct-pix2pix, which injects in every layer",
                            fix: "remove it, or use self_replace_variant prompt-to-prompt")
        }
        if given.contains(.ancestralNoise), let scheduler, !SchedulerChoice.ancestralClassNames.contains(scheduler.className) {
            throw EditError(field: "ancestral_noise", problem: "has no effect with \(scheduler.className), which draws no noise after the start",
                            fix: "remove it, or use an ancestral scheduler (euler-a)")
        }
        if image != nil, let scheduler, !Self.realImageSchedulers.contains(scheduler.className) {
            throw EditError(field: "scheduler", problem: "is \(scheduler.className), but a real image is inverted with DDIM and edited with DDIM or DPM-Solver++",
                            fix: "remove scheduler (DDIM from the model's scheduler config), or set it to ddim or dpm++")
        }
        if image != nil, inversion == .negativePrompt, negativePrompt != nil {
            throw EditError(field: "negative_prompt", problem: "is given, but negative-prompt inversion makes the source prompt the negative prompt",
                            fix: "remove negative_prompt, or choose inversion direct or ddim")
        }
        if let blend, blend.count != prompts.count {
            throw EditError(field: "blend", problem: "has \(blend.count) word lists for \(prompts.count) prompts", fix: "give one list per prompt, source first")
        }
        for key in [Key.blendThreshold, .startBlend] where blend == nil && given.contains(key) {
            throw EditError(field: key.rawValue, problem: "is given without blend", fix: "give blend words too, or remove it")
        }
        if blendSubtract == nil && given.contains(.blendSubtractThreshold) {
            throw EditError(field: "blend_subtract_threshold", problem: "is given without blend_subtract", fix: "give blend_subtract words too, or remove it")
        }
        if let blendSubtract {
            guard blend != nil else { throw EditError(field: "blend_subtract", problem: "is given without blend", fix: "give blend words too, or remove it") }
            guard blendSubtract.count == prompts.count else {
                throw EditError(field: "blend_subtract", problem: "has \(blendSubtract.count) word lists for \(prompts.count) prompts", fix: "give one list per prompt, source first")
            }
        }
    }

    /// An edit's id names its output folder: letters, digits, '-', '_' and '.', not starting
    /// with a dot, and no longer than a file name may be (255 bytes).
    public static func validate(id: String) throws {
        guard !id.isEmpty else { throw EditError(field: "id", problem: "is missing or empty", fix: "give each edit a unique id") }
        guard id.utf8.count <= 255, id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !id.hasPrefix(".") else {
            throw EditError(field: "id", problem: "'\(id.prefix(255))' is not usable as a folder name",
                            fix: "use letters, digits, '-', '_' and '.' only, at most 255 bytes")
        }
    }

    private static func check(fraction value: Double, field: Key, fix: String) throws {
        guard value >= 0 && value <= 1 else { throw EditError(field: field.rawValue, problem: "\(value) is outside [0, 1]", fix: fix) }
    }

    private static func check(_ value: Int?, minimum: Int, field: Key) throws {
        guard let value, value < minimum else { return }
        throw EditError(field: field.rawValue, problem: "should be a whole number >= \(minimum), found \(value)", fix: "give a whole number >= \(minimum)")
    }

    private static func check(_ value: Int?, in range: ClosedRange<Int>, field: Key) throws {
        guard let value, !range.contains(value) else { return }
        throw EditError(field: field.rawValue, problem: "should be a whole number from \(range.lowerBound) to \(range.upperBound), found \(value)",
                        fix: "give a whole number from \(range.lowerBound) to \(range.upperBound)")
    }
}
