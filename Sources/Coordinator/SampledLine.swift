import EditContract
import Foundation

/// A sampled line of a job: its variants expanded lazily (a cursor, not a million records),
/// which are in, the results of a line still running, and its tally. A line ends once every
/// variant has a journaled result; then the best are chosen and its pictures and manifest
/// lines written.
public final class SampledLine {
    public let job: String
    public let envelope: EditEnvelope
    public let plan: SamplingPlan
    public var id: String { envelope.id }
    /// What a worker must serve: the model at its precision, and the scorer.
    public var capability: String { envelope.capabilityKey }
    public internal(set) var state: EditRecord.State = .pending
    public internal(set) var error: String?
    public internal(set) var finishedAt: Date?
    /// Variants with a journaled result (or one being committed).
    var done: VariantSet
    /// Variants from here on have never been handed out (a restart starts again at 0 and skips
    /// the done ones).
    var cursor = 0
    /// Variants not yet handed out.
    var undispatched: Int
    /// The results of a running line, by variant index; dropped once its outputs are written.
    var results: [Int: VariantRecord] = [:]
    public internal(set) var tally = VariantTally()
    /// While its outputs are being written: the time it finishes at once they are.
    var writing: Date?

    init(job: String, envelope: EditEnvelope, plan: SamplingPlan) {
        (self.job, self.envelope, self.plan) = (job, envelope, plan)
        done = VariantSet(count: plan.samples)
        undispatched = plan.samples
    }

    /// Every variant is in.
    var allIn: Bool { done.count == plan.samples }

    /// The next variant never handed out, moving the cursor past it; nil once all were.
    func nextVariant() -> Int? {
        while cursor < plan.samples {
            defer { cursor += 1 }
            if !done.contains(cursor) {
                undispatched -= 1
                return cursor
            }
        }
        return nil
    }

    /// The kept variants, best first: those the filter passes, by directional similarity then
    /// seed, both descending (as the recipe sorts), the first `keep`. Depends only on the
    /// results, never on their order of arrival.
    func kept() -> [VariantRecord] {
        let passing = results.values.filter { $0.error == nil && plan.passes($0.scores) }.sorted(by: Self.better)
        return plan.keep.map { Array(passing.prefix($0)) } ?? passing
    }

    /// Whether a new result's pictures may end among the kept: it passes the filter and fewer
    /// than `keep` results in so far are better. One that is not could never be kept (the
    /// better ones stay), so only these pictures are staged.
    func mayBeKept(_ record: VariantRecord) -> Bool {
        guard record.error == nil, plan.passes(record.scores) else { return false }
        guard let keep = plan.keep else { return true }
        let better = results.values.filter { $0.error == nil && plan.passes($0.scores) && Self.better($0, record) }.count
        return better < keep
    }

    static func better(_ a: VariantRecord, _ b: VariantRecord) -> Bool {
        SamplingPlan.ranksAbove((a.scores, a.seed), (b.scores, b.seed))
    }
}

/// One variant's result, as the journal keeps it.
public struct VariantRecord: Sendable, Equatable {
    public var index: Int
    public var seed: UInt64
    /// The drawn values by their `vary` keys.
    public var values: [String: Double]
    public var run: EditRun?
    public var worker: String
    public var seconds: Double
    public var scores: PairScores?
    /// Why it failed; nil when it ran.
    public var error: String?
    /// Its pictures are in the state folder until its line's outputs are written.
    public var staged: Bool
}

/// Counts of a line's (or a job's) variants.
public struct VariantTally: Sendable, Equatable, Codable {
    /// With a result (run or failed).
    public var done = 0
    public var failed = 0
    /// Kept once their line ended.
    public var kept = 0
    /// Not kept, by reason: a filter key (clip_text, clip_direction, clip_image) or "ranked"
    /// (passed, but not among the best `keep`).
    public var rejected: [String: Int] = [:]

    public init() {}

    mutating func add(_ other: VariantTally) {
        (done, failed, kept) = (done + other.done, failed + other.failed, kept + other.kept)
        rejected.merge(other.rejected, uniquingKeysWith: +)
    }
}

/// Which variants of a line are in: one bit each.
struct VariantSet {
    private var words: [UInt64]
    private(set) var count = 0

    init(count capacity: Int) { words = [UInt64](repeating: 0, count: (capacity + 63) / 64) }

    func contains(_ index: Int) -> Bool { words[index / 64] & (1 << UInt64(index % 64)) != 0 }

    /// Adds `index`; false when it was in.
    @discardableResult
    mutating func insert(_ index: Int) -> Bool {
        guard !contains(index) else { return false }
        words[index / 64] |= 1 << UInt64(index % 64)
        count += 1
        return true
    }
}
