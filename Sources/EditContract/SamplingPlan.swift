/// How a batch line becomes a dataset's worth of edits: `samples` variants, each drawn from the
/// line's seed and its index (`VariantDraw`), scored with a CLIP model, filtered and ranked. The
/// coordinator expands, journals and selects by it (it travels outside the sealed spec); the
/// worker that runs a variant reads the rest (`vary`) from the spec.
public struct SamplingPlan: Sendable, Equatable {
    /// Variants of the line.
    public var samples: Int
    /// The best this many by directional similarity among those the filter passes; nil keeps
    /// every one it passes.
    public var keep: Int?
    public var filter: ScoreFilter
    /// Write the pictures of variants not kept too (they are listed either way).
    public var keepRejected: Bool
    /// The CLIP model that scores the pairs, by the key workers load it under ("default": the
    /// embedded model's own); nil scores nothing (then nothing is filtered or ranked).
    public var scorer: String?
    /// The edit instruction the pair illustrates (a prompt file's "edit"), for the dataset's
    /// records; nil when the line has none.
    public var instruction: String?

    public init(samples: Int, keep: Int? = nil, filter: ScoreFilter = ScoreFilter(), keepRejected: Bool = false,
                scorer: String? = SamplingPlan.defaultScorer, instruction: String? = nil) {
        (self.samples, self.keep, self.filter, self.keepRejected, self.scorer, self.instruction) = (samples, keep, filter, keepRejected, scorer, instruction)
    }

    /// The embedded model's scorer.
    public static let defaultScorer = "default"
    /// The spelling of "no scorer" in a spec.
    public static let noScorer = "none"
    /// The most variants one line may ask for (each is journaled as a row).
    public static let maximumSamples = 10_000

    /// Checks the values on their own (a spec checks how they fit its other options).
    public func validate() throws {
        guard (1...SamplingPlan.maximumSamples).contains(samples) else {
            throw EditError(field: "samples", problem: "should be a whole number from 1 to \(SamplingPlan.maximumSamples), found \(samples)",
                            fix: "give the number of variants to make of the line, e.g. 100")
        }
        if let keep, !(1...samples).contains(keep) {
            throw EditError(field: "keep", problem: "should be a whole number from 1 to samples (\(samples)), found \(keep)",
                            fix: "give how many of the line's best variants to keep, e.g. 4")
        }
        for (key, threshold) in [(ScoreFilter.Key.text, filter.text), (.direction, filter.direction), (.image, filter.image)] {
            guard let threshold, !(threshold.isFinite && (-1...1).contains(threshold)) else { continue }
            throw EditError(field: "filter.\(key.rawValue)", problem: "\(threshold) is not a cosine similarity", fix: "give a threshold in [-1, 1], e.g. 0.2")
        }
        if let scorer, scorer.isEmpty || scorer.utf8.count > 4096 || scorer.contains(where: \.isNewline) {
            throw EditError(field: "scorer", problem: "is empty, over-long or holds a line break", fix: "name the CLIP model the workers load (\"default\" for the embedded model's)")
        }
        if scorer == nil {
            if keep != nil { throw EditError(field: "keep", problem: "ranks by CLIP scores, but scorer is none", fix: "name a scorer, or remove keep") }
            if !filter.isEmpty { throw EditError(field: "filter", problem: "needs CLIP scores, but scorer is none", fix: "name a scorer, or remove filter") }
        }
        if let instruction, instruction.utf8.count > 1 << 16 {
            throw EditError(field: "instruction", problem: "is \(instruction.utf8.count) bytes long", fix: "shorten it")
        }
    }

    /// The order `keep` takes the best in: higher directional similarity first (no scores
    /// count as 0), ties to the larger seed, so the kept set depends on nothing but results.
    public static func ranksAbove(_ a: (scores: PairScores?, seed: UInt64), _ b: (scores: PairScores?, seed: UInt64)) -> Bool {
        let (x, y) = (a.scores?.direction ?? 0, b.scores?.direction ?? 0)
        return x != y ? x > y : a.seed > b.seed
    }

    /// Whether a variant with these scores passes the filter (every variant does when nothing is
    /// scored).
    public func passes(_ scores: PairScores?) -> Bool {
        guard let scores else { return scorer == nil }
        return filter.rejection(of: scores) == nil
    }
}

/// The recipe's CLIP thresholds: a variant passes when each picture matches its prompt
/// (`clip_text`, both pictures), the pictures changed as the prompts did (`clip_direction`) and
/// stayed alike (`clip_image`). A threshold left out passes everything.
public struct ScoreFilter: Sendable, Equatable {
    public var text: Double?
    public var direction: Double?
    public var image: Double?

    public init(text: Double? = nil, direction: Double? = nil, image: Double? = nil) {
        (self.text, self.direction, self.image) = (text, direction, image)
    }

    /// The InstructPix2Pix recipe's: 0.2, 0.2 and 0.7.
    public static let instructPix2Pix = ScoreFilter(text: 0.2, direction: 0.2, image: 0.7)

    /// The keys of a spec's `filter`.
    public enum Key: String, CaseIterable, Sendable {
        case text = "clip_text", direction = "clip_direction", image = "clip_image"
    }

    /// The first threshold the scores miss, as its key (the rejection's reason), or nil.
    public func rejection(of scores: PairScores) -> Key? {
        if let text, min(scores.text0, scores.text1) < text { return .text }
        if let direction, scores.direction < direction { return .direction }
        if let image, scores.image < image { return .image }
        return nil
    }

    public var isEmpty: Bool { text == nil && direction == nil && image == nil }
}

extension ScoreFilter {
    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        (object[Key.text.rawValue], object[Key.direction.rawValue], object[Key.image.rawValue]) = (text.map { .double($0) }, direction.map { .double($0) }, image.map { .double($0) })
        return .object(object)
    }
}

/// Records (a coordinator's journal) keep a plan as JSON with the spec's key names.
extension SamplingPlan: Codable {
    private enum CodingKeys: String, CodingKey {
        case samples, keep, filter, keepRejected = "keep_rejected", scorer, instruction
    }
}

extension ScoreFilter: Codable {
    private enum CodingKeys: String, CodingKey {
        case text = "clip_text", direction = "clip_direction", image = "clip_image"
    }
}
