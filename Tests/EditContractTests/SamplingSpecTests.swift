import EditContract
import Foundation
import Testing

@Suite("sampled lines: samples, vary, filter, keep, the recipe, and each variant's draw")
struct SamplingSpecTests {
    func parse(_ text: String) throws -> EditSpec { try EditSpec(json: try JSONValue.parse(Data(text.utf8))) }

    func error(_ text: String) -> EditError? {
        do { _ = try parse(text); return nil } catch { return error as? EditError }
    }

    static let pair = #""id": "p", "source": "a red circle", "targets": ["a blue circle"]"#

    @Test("a sampled line's options parse, round-trip and travel in the envelope's outside")
    func parsing() throws {
        let options = #""samples": 50, "keep": 3, "filter": {"clip_text": 0.2, "clip_direction": 0.15}, "keep_rejected": true, "scorer": "clip-l", "instruction": "make it blue", "vary": {"self_replace": [0.2, 0.6], "guidance": [5, 9]}"#
        let spec = try parse("{\(Self.pair), \(options)}")
        let plan = try #require(spec.sampling)
        #expect(plan == SamplingPlan(samples: 50, keep: 3, filter: ScoreFilter(text: 0.2, direction: 0.15), keepRejected: true,
                                     scorer: "clip-l", instruction: "make it blue"))
        #expect(spec.vary == VariedValues(selfReplace: 0.2...0.6, guidance: 5...9))
        #expect(try EditSpec(json: spec.json) == spec)
        let envelope = try EditEnvelope(spec)
        #expect(envelope.sampling == plan && envelope.capabilityKey == "default+scorer:clip-l")
        #expect(try envelope.open() == spec)
        var forged = envelope
        forged.sampling?.keep = 99
        #expect(throws: EditError.self) { try forged.open() }
        #expect(try parse("{\(Self.pair), \"samples\": 2, \"scorer\": \"none\"}").sampling?.scorer == nil)
        #expect(try parse("{\(Self.pair)}").sampling == nil)
    }

    @Test("the instruct-pix2pix recipe sets its sampler, attention sharing, ranges, filter and keep; every value can be overridden")
    func recipe() throws {
        let spec = try parse("{\(Self.pair), \"recipe\": \"instruct-pix2pix\"}")
        #expect(spec.scheduler?.className == "EulerAncestralDiscreteScheduler" && spec.steps == 100 && spec.ancestralNoise == .shared)
        #expect(spec.selfReplaceVariant == .instructPix2Pix && spec.crossReplace == CrossReplaceSchedule(StepRange(end: 0)))
        #expect(spec.vary == .instructPix2Pix && spec.sampling?.samples == 100 && spec.sampling?.keep == 4 && spec.sampling?.filter == .instructPix2Pix)
        #expect(try EditSpec(json: spec.json) == spec)
        let own = try parse("{\(Self.pair), \"recipe\": \"instruct-pix2pix\", \"samples\": 16, \"keep\": 2, \"steps\": 20, \"filter\": {\"clip_image\": 0.5}}")
        #expect(own.sampling?.samples == 16 && own.sampling?.keep == 2 && own.steps == 20 && own.sampling?.filter == ScoreFilter(image: 0.5))
        #expect(error("{\(Self.pair), \"recipe\": \"dreambooth\"}")?.field == "recipe")
    }

    @Test("bad sampling options are refused, naming the field", arguments: [
        (#""keep": 2"#, "keep"),
        (#""vary": {"guidance": [1, 2]}"#, "vary"),
        (#""samples": 0"#, "samples"),
        (#""samples": 10001"#, "samples"),
        (#""samples": 4, "keep": 5"#, "keep"),
        (#""samples": 4, "filter": {"clip_direction": 1.5}"#, "filter.clip_direction"),
        (#""samples": 4, "filter": {"clip_sharpness": 0.5}"#, "filter.clip_sharpness"),
        (#""samples": 4, "vary": {"self_replace": [0.9, 0.1]}"#, "vary.self_replace"),
        (#""samples": 4, "vary": {"self_replace": [0.1, 1.5]}"#, "vary.self_replace"),
        (#""samples": 4, "vary": {"steps": [10, 20]}"#, "vary.steps"),
        (#""samples": 4, "scorer": "none", "keep": 1"#, "keep"),
        (#""samples": 4, "mode": "none", "vary": {"cross_replace": [0, 1]}"#, "vary.cross_replace"),
        (#""samples": 4, "model": "/models/sd15""#, "scorer"),
        (#""samples": 4, "image": "photo.png""#, "samples"),
    ])
    func refusals(_ options: String, field: String) {
        #expect(error("{\(Self.pair), \(options)}")?.field == field, "\(options)")
    }

    @Test("a line scored by CLIP is a pair")
    func pairsOnly() {
        #expect(error(#"{"id": "p", "source": "a red circle", "targets": ["a blue circle", "a red square"], "samples": 4}"#)?.field == "targets")
        #expect(error(#"{"id": "p", "source": "a red circle", "targets": ["a blue circle", "a red square"], "samples": 4, "scorer": "none"}"#) == nil)
    }

    @Test("each variant's seed and values follow from the line's seed and its index alone: distinct seeds, values within their ranges")
    func draws() throws {
        let spec = try parse("{\(Self.pair), \"seed\": 42, \"samples\": 200, \"vary\": {\"self_replace\": [0.1, 0.9], \"cross_replace\": [0.2, 0.4], \"guidance\": [7.5, 15]}}")
        let variants = (0..<200).map { spec.variant($0) }
        #expect(Set(variants.map(\.draw.seed)).count == 200)
        #expect(variants.allSatisfy { $0.draw.seed < 1 << 53 && $0.spec.seed == $0.draw.seed && $0.spec.sampling == nil && $0.spec.vary.isEmpty })
        #expect(variants.allSatisfy { v in
            (0.1..<0.9).contains(v.draw.selfReplace ?? -1) && (0.2..<0.4).contains(v.draw.crossReplace ?? -1) && (7.5..<15).contains(v.draw.guidance ?? -1)
        })
        #expect(variants.allSatisfy { $0.spec.selfReplace == StepRange(end: $0.draw.selfReplace ?? 0) && $0.spec.guidance == $0.draw.guidance })
        #expect(variants.allSatisfy { $0.spec.crossReplace == CrossReplaceSchedule(StepRange(end: $0.draw.crossReplace ?? 0)) })
        // Deterministic, and independent of how many variants were drawn before.
        #expect(spec.variant(137).draw == variants[137].draw)
        #expect(VariantDraw.seeds(lineSeed: 42, count: 10) == Array(variants.prefix(10).map(\.draw.seed)))
        // Spread: the mean of 200 uniform draws in [0.1, 0.9] is near 0.5.
        let mean = variants.compactMap(\.draw.selfReplace).reduce(0, +) / 200
        #expect(abs(mean - 0.5) < 0.06, "\(mean)")
        // Another line seed, other variants.
        var other = spec
        other.seed = 43
        #expect(other.variant(0).draw.seed != variants[0].draw.seed)
    }

    @Test("the filter names the first threshold a pair misses")
    func filter() {
        let filter = ScoreFilter.instructPix2Pix
        #expect(filter.rejection(of: PairScores(text0: 0.3, text1: 0.25, direction: 0.3, image: 0.8)) == nil)
        #expect(filter.rejection(of: PairScores(text0: 0.3, text1: 0.15, direction: 0.3, image: 0.8)) == .text)
        #expect(filter.rejection(of: PairScores(text0: 0.3, text1: 0.25, direction: 0.1, image: 0.6)) == .direction)
        #expect(filter.rejection(of: PairScores(text0: 0.3, text1: 0.25, direction: 0.3, image: 0.6)) == .image)
        #expect(SamplingPlan(samples: 1, scorer: nil).passes(nil) && !SamplingPlan(samples: 1).passes(nil))
    }
}
