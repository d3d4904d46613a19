import Foundation

/// An edit as the cluster carries it. `ptp submit` checks the spec and seals it as canonical
/// JSON, with a few fields written outside; the coordinator schedules, journals and records the
/// edit by those fields (checked on arrival, since it cannot know who sent them) and passes the
/// spec on unread; the worker that runs stage 1 opens it, which parses and checks it once and
/// refuses it if the outside disagrees with it. So a spec is parsed once by the client and once
/// by a worker, never by the coordinator.
public struct EditEnvelope: Sendable, Equatable {
    /// The edit's id: its folder in the output.
    public var id: String
    /// Every prompt, source first: how many images the edit makes, and what each image's finish
    /// task conditions on.
    public var prompts: [String]
    /// The model key ("default" for the embedded model) and the precision: together, the
    /// capability a worker needs to run the edit.
    public var model: String
    public var precision: Precision
    /// What finishing an image needs besides its prompt.
    public var seed: UInt64
    public var superResolution: Bool
    /// Edits with equal keys may share a stage-1 task: the same model, precision and sampling
    /// settings, so a task's edits take about as long as each other.
    public var packKey: String
    /// A sampled line's plan (how many variants, how they are scored and chosen); nil for a
    /// single edit.
    public var sampling: SamplingPlan?
    /// The SHA-256 of the picture a real-image edit carries (the spec's `image_sha256`): the
    /// coordinator keeps the bytes by it and sends them with the edit's stage-1 task.
    public var picture: String?
    /// The SHA-256 of the edit's mask picture (the spec's `mask_sha256`), carried as `picture` is.
    public var mask: String?
    /// The spec as canonical JSON (keys sorted, slashes unescaped): what workers run, and what a
    /// manifest line records as `spec`.
    public var spec: String

    public init(id: String, prompts: [String], model: String, precision: Precision, seed: UInt64, superResolution: Bool,
                packKey: String, sampling: SamplingPlan? = nil, picture: String? = nil, mask: String? = nil, spec: String) {
        (self.id, self.prompts, self.model, self.precision, self.picture, self.mask) = (id, prompts, model, precision, picture, mask)
        (self.seed, self.superResolution, self.packKey, self.sampling, self.spec) = (seed, superResolution, packKey, sampling, spec)
    }

    /// Seals a spec (checked by whoever made it).
    public init(_ spec: EditSpec) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.init(id: spec.id, prompts: spec.prompts, model: spec.model ?? "default", precision: spec.precision, seed: spec.seed,
                  superResolution: spec.superResolution, packKey: spec.packKey, sampling: spec.sampling,
                  picture: spec.imageSHA256, mask: spec.maskSHA256, spec: String(decoding: try encoder.encode(spec.json), as: UTF8.self))
    }

    /// The pictures the edit carries: its image's and its mask's digests, those it has.
    public var pictures: [String] { [picture, mask].compactMap { $0 } }

    /// The capability a worker needs (`CapabilityKey`).
    public var capabilityKey: String { CapabilityKey.key(model: model, precision: precision, scorer: sampling?.scorer) }

    /// The longest model key, pack key and sealed spec accepted (a spec is a few kilobytes;
    /// prompts are bounded by their tokenizers long before this).
    public static let maximumKeyLength = 4096
    public static let maximumSpecLength = 1 << 20

    /// Checks the outside, as the coordinator receives it from a client it cannot trust to have
    /// run `ptp submit`: the id is a usable folder name, the prompt count is within the
    /// contract's bounds, the keys and the spec are of a sane size.
    public func validate() throws {
        try EditSpec.validate(id: id)
        guard (2...(EditSpec.maximumTargets + 1)).contains(prompts.count) else {
            throw EditError(field: "prompts", problem: "edit '\(id)' has \(prompts.count) prompts; an edit has a source and 1 to \(EditSpec.maximumTargets) targets",
                            fix: "send edits made by ptp submit")
        }
        guard !model.isEmpty, model.utf8.count <= Self.maximumKeyLength, packKey.utf8.count <= Self.maximumKeyLength else {
            throw EditError(field: "model", problem: "edit '\(id)' names an empty or over-long model or pack key", fix: "send edits made by ptp submit")
        }
        guard spec.utf8.count <= Self.maximumSpecLength else {
            throw EditError(field: "spec", problem: "edit '\(id)' is \(spec.utf8.count) bytes of JSON, over \(Self.maximumSpecLength)",
                            fix: "shorten its prompts")
        }
        do { try sampling?.validate() } catch let error as EditError {
            throw EditError(field: error.field, problem: "of edit '\(id)': \(error.problem)", fix: error.fix)
        }
        for (field, digest) in [("image_sha256", picture), ("mask_sha256", mask)] {
            if let digest, !PictureDigest.isWellFormed(digest) {
                throw EditError(field: field, problem: "of edit '\(id)' is not a SHA-256 in hex", fix: "send edits made by ptp submit")
            }
        }
        // Canonical JSON escapes every control character: a raw one (a line break above all,
        // which would split a manifest line) is not a spec ptp submit wrote.
        guard spec.utf8.allSatisfy({ $0 >= 0x20 }) else {
            throw EditError(field: "spec", problem: "edit '\(id)' holds raw control characters", fix: "send edits made by ptp submit")
        }
    }

    /// The spec inside, parsed and checked, after checking that the outside says the same.
    public func open() throws -> EditSpec {
        let parsed: JSONValue
        do { parsed = try StrictJSON.parse(spec) } catch {
            throw EditError(field: "spec", problem: "of edit '\(id)' is not JSON (\(error))", fix: "send edits made by ptp submit")
        }
        let opened = try EditSpec(json: parsed)
        let agreement = [("id", opened.id == id), ("prompts", opened.prompts == prompts), ("model", (opened.model ?? "default") == model),
                         ("precision", opened.precision == precision), ("seed", opened.seed == seed),
                         ("super_resolution", opened.superResolution == superResolution), ("pack key", opened.packKey == packKey),
                         ("samples", opened.sampling == sampling), ("image_sha256", opened.imageSHA256 == picture),
                         ("mask_sha256", opened.maskSHA256 == mask)]
        for (field, agrees) in agreement where !agrees {
            throw EditError(field: field, problem: "of edit '\(id)' differs between the spec and the fields sent beside it",
                            fix: "send edits made by ptp submit")
        }
        return opened
    }

    /// What finishing image `index` needs.
    public func finish(index: Int) -> FinishSpec {
        FinishSpec(model: model, precision: precision, seed: seed, superResolution: superResolution, prompt: prompts[index])
    }
}
