import EditContract
import Foundation
import Testing

@Suite("edit specs: parsing and validation errors that name the field and the fix")
struct EditSpecTests {
    func parse(_ text: String) throws -> EditSpec { try EditSpec(json: try JSONValue.parse(Data(text.utf8))) }

    func error(_ text: String) -> EditError? {
        do { _ = try parse(text); return nil } catch { return error as? EditError }
    }

    @Test("a full spec round-trips through JSON; numbers, pairs and per-word maps are accepted")
    func parsing() throws {
        let spec = try parse(#"""
            {"id": "e-1", "source": "a cat", "targets": ["a dog", "a big dog"], "mode": "refine", "negative_prompt": "blurry",
             "cross_replace": {"default": 0.8, "dog": [0.1, 0.4]}, "self_replace": 1, "blend": ["cat", ["dog"], ["big", "dog"]],
             "reweight": {"dog": -1}, "seed": 8888, "steps": 20, "guidance": 7, "height": 512, "width": 512,
             "super_resolution": false, "blend_subtract": [[], [], ["big"]], "blend_subtract_threshold": 0.6, "start_blend": 0.1}
            """#)
        #expect(spec.blendSubtract == [[], [], ["big"]] && spec.blendSubtractThreshold == 0.6 && spec.startBlend == 0.1)
        #expect(spec.targets == ["a dog", "a big dog"] && spec.mode == .refine && spec.seed == 8888 && spec.negativePrompt == "blurry")
        #expect(spec.crossReplace.defaultRange == StepRange(end: 0.8) && spec.crossReplace.words["dog"] == StepRange(start: 0.1, end: 0.4))
        #expect(spec.selfReplace == StepRange(end: 1) && spec.blend == [["cat"], ["dog"], ["big", "dog"]])
        #expect(spec.reweight == ["dog": -1] && spec.guidance == 7 && !spec.superResolution)
        #expect(try EditSpec(json: spec.json) == spec)
        #expect(try parse(#"{"id": "a", "source": "a red cat", "targets": ["a blue cat"]}"#).resolvedMode == .replace)
        #expect(try parse(#"{"id": "a", "source": "a red cat", "targets": ["a blue cat", "a very blue cat"]}"#).resolvedMode == .refine)
        // Precision and scheduler, in the string and the object form, round-trip.
        let fast = try parse(#"{"id": "f", "source": "a cat", "targets": ["a dog"], "precision": "bf16", "scheduler": "dpm++-karras,solver_order=3"}"#)
        #expect(fast.precision == .bf16)
        #expect(fast.scheduler == SchedulerChoice(className: "DPMSolverMultistepScheduler", overrides: ["use_karras_sigmas": .bool(true), "solver_order": .int(3)]))
        #expect(try EditSpec(json: fast.json) == fast)
        let object = try parse(#"{"id": "o", "source": "a cat", "targets": ["a dog"], "scheduler": {"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing"}}"#)
        #expect(object.scheduler == SchedulerChoice(className: "EulerDiscreteScheduler", overrides: ["timestep_spacing": .string("trailing")]))
        #expect(try parse(#"{"id": "d", "source": "a cat", "targets": ["a dog"]}"#).precision == .fp32)
        // SDXL's size and crop conditioning.
        let sized = try parse(#"{"id": "s", "source": "a cat", "targets": ["a dog"], "original_size": [2048, 1536], "crops_coords_top_left": [0, 64]}"#)
        #expect(sized.originalSize == [2048, 1536] && sized.cropsCoordsTopLeft == [0, 64])
        #expect(try EditSpec(json: sized.json) == sized)
    }

    @Test("bad specs are refused by field", arguments: [
        (#"{"id": "a", "source": "x", "targets": ["y"], "colour": 1}"#, "colour"),
        (#"{"source": "x", "targets": ["y"]}"#, "id"),
        (#"{"id": "../up", "source": "x", "targets": ["y"]}"#, "id"),
        (#"{"id": "a", "targets": ["y"]}"#, "source"),
        (#"{"id": "a", "source": "x", "targets": []}"#, "targets"),
        (#"{"id": "a", "source": "x", "targets": ["y", 3]}"#, "targets[1]"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "mode": "swap"}"#, "mode"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "negative_prompt": ["blurry"]}"#, "negative_prompt"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "cross_replace": 1.5}"#, "cross_replace"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "cross_replace": [0.9, 0.2]}"#, "cross_replace"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "cross_replace": {"y": -0.1}}"#, "cross_replace.y"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "self_replace": "half"}"#, "self_replace"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "blend": [["x"]]}"#, "blend"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "blend": [["x"], ["y"]], "start_blend": 2}"#, "start_blend"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "start_blend": 0.5}"#, "start_blend"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "blend_threshold": 0.5}"#, "blend_threshold"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "blend": [["x"], ["y"]], "blend_subtract_threshold": 0.5}"#, "blend_subtract_threshold"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "blend": [["x"], ["y"]], "blend_subtract": [[], ["y"]], "blend_subtract_threshold": 1.5}"#, "blend_subtract_threshold"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "reweight": {"y": "big"}}"#, "reweight"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "mode": "reweight"}"#, "reweight"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "mode": "reweight", "reweight": {"x": 2}}"#, "targets[0]"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "mode": "none", "blend": [["x"], ["y"]]}"#, "blend"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "seed": -1}"#, "seed"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "steps": 0}"#, "steps"),
        // Values that would make a worker allocate without bound, or overflow.
        (#"{"id": "a", "source": "x", "targets": ["y"], "height": 1099511627776}"#, "height"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "width": 4104}"#, "width"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "self_replace_side": 4000000000}"#, "self_replace_side"),
        ("{\"id\": \"a\", \"source\": \"x\", \"targets\": [" + Array(repeating: "\"y\"", count: 33).joined(separator: ", ") + "]}", "targets"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "steps": 2.5}"#, "steps"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "guidance": -2}"#, "guidance"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "precision": "fp16"}"#, "precision"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "scheduler": "lms"}"#, "scheduler"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "scheduler": {"solver_order": 2}}"#, "scheduler"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "scheduler": "euler,karras"}"#, "scheduler"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "original_size": [1024]}"#, "original_size"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "original_size": [0, 1024]}"#, "original_size"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "original_size": "1024x1024"}"#, "original_size"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "crops_coords_top_left": [-1, 0]}"#, "crops_coords_top_left"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "crops_coords_top_left": [0, 1e12]}"#, "crops_coords_top_left"),
        // A real image is inverted and edited with DDIM.
        (#"{"id": "a", "source": "x", "targets": ["y"], "image": "p.png", "scheduler": "euler"}"#, "scheduler"),
        // The recipe's options, where they do nothing or do not exist.
        (#"{"id": "a", "source": "x", "targets": ["y"], "self_replace_variant": "ip2p"}"#, "self_replace_variant"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "mode": "none", "self_replace_variant": "instruct-pix2pix"}"#, "self_replace_variant"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "self_replace_variant": "instruct-pix2pix", "self_replace_side": 16}"#, "self_replace_side"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "ancestral_noise": "per-prompt"}"#, "ancestral_noise"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "scheduler": "ddim", "ancestral_noise": "independent"}"#, "ancestral_noise"),
    ])
    func refused(_ text: String, field: String) {
        let found = error(text)
        #expect(found?.field == field, "\(text) gave \(found.map { "\($0)" } ?? "no error")")
        #expect(!(found?.fix.isEmpty ?? true))
    }

    @Test("a spec is Codable as its JSON object: encoded and decoded equal, and checked while decoding")
    func codable() throws {
        var spec = EditSpec(id: "c", source: "a cat on a mat", targets: ["a dog on a mat"])
        spec.crossReplace = CrossReplaceSchedule(StepRange(start: 0.1, end: 0.7), words: ["dog": StepRange(end: 0.3)])
        spec.blend = [["cat"], ["dog"]]
        spec.scheduler = try SchedulerChoice(parsing: "euler-karras")
        spec.precision = .bf16
        spec.seed = 42
        try spec.validate()
        let data = try JSONEncoder().encode([spec, spec])
        #expect(try JSONDecoder().decode([EditSpec].self, from: data) == [spec, spec])
        // The same keys as the JSON form: a spec encoded is a batch line.
        let object = try #require(try JSONValue.parse(data).arrayValue?.first?.objectValue)
        #expect(Set(object.keys).isSubset(of: Set(EditSpec.Key.allCases.map(\.rawValue))))
        #expect(object["cross_replace"] == .object(["default": .array([.double(0.1), .double(0.7)]), "dog": .double(0.3)]))
        let bad = Data(#"[{"id": "x", "source": "a", "targets": ["b"], "steps": 0}]"#.utf8)
        #expect(throws: EditError.self) { try JSONDecoder().decode([EditSpec].self, from: bad) }
    }

    @Test("a spec made in code is checked as a decoded one is")
    func typedValidation() {
        func field(given: Set<EditSpec.Key> = [], _ change: (inout EditSpec) -> Void) -> String? {
            var spec = EditSpec(id: "t", source: "a cat", targets: ["a dog"])
            change(&spec)
            do { try spec.validate(given: given); return nil } catch { return (error as? EditError)?.field }
        }
        #expect(field { _ in } == nil)
        #expect(field { $0.steps = 0 } == "steps")
        #expect(field { $0.height = 4 } == "height")
        #expect(field { $0.selfReplace = StepRange(start: 0.5, end: 0.2) } == "self_replace")
        #expect(field { $0.crossReplace.words["dog"] = StepRange(end: 2) } == "cross_replace.dog")
        #expect(field { $0.seed = UInt64.max } == "seed")
        #expect(field { $0.id = "../x" } == "id")
        // An option without effect is refused when its writer gave it, not when code switched the mode.
        #expect(field(given: [.mode, .blend]) { $0.mode = .none; $0.blend = [["cat"], ["dog"]] } == "blend")
        #expect(field { $0.mode = .none; $0.blend = [["cat"], ["dog"]] } == nil)
        #expect(field { $0.blendSubtract = [[], ["dog"]] } == "blend_subtract")
        #expect(field { $0.reweight = ["dog": .infinity] } == "reweight")
        #expect(field { $0.image = "p.png"; $0.scheduler = SchedulerChoice(className: "EulerDiscreteScheduler") } == "scheduler")
        // A picture's digest: 64 lowercase hex digits, and only with an image.
        let digest = String(repeating: "a1", count: 32)
        #expect(field { $0.image = "p.png"; $0.imageSHA256 = digest } == nil)
        #expect(field { $0.imageSHA256 = digest } == "image_sha256")
        #expect(field { $0.image = "p.png"; $0.imageSHA256 = digest.uppercased() } == "image_sha256")
        #expect(field { $0.image = "p.png"; $0.imageSHA256 = "../../etc/passwd" } == "image_sha256")
    }

    @Test("a picture's digest travels in the sealed spec and beside it, the two must agree, and it splits pack keys")
    func pictureDigest() throws {
        var spec = EditSpec(id: "t", source: "a cat", targets: ["a dog"])
        spec.image = "p.png"
        spec.imageSHA256 = String(repeating: "a1", count: 32)
        let envelope = try EditEnvelope(spec)
        #expect(envelope.picture == spec.imageSHA256)
        #expect(try envelope.open().imageSHA256 == spec.imageSHA256)
        var forged = envelope
        forged.picture = String(repeating: "b2", count: 32)
        #expect((#expect(throws: EditError.self) { try forged.open() })?.field == "image_sha256")
        forged.picture = "not a digest"
        #expect(throws: EditError.self) { try forged.validate() }
        var other = spec
        other.imageSHA256 = String(repeating: "c3", count: 32)
        #expect(other.packKey != spec.packKey)
        // Edits without pictures keep the key journals of earlier versions hold.
        let plain = EditSpec(id: "t", source: "a cat", targets: ["a dog"])
        #expect(plain.packKey == plain.capabilityKey + "|-|-|-|-")
    }

    @Test("a batch names the edit and the field that is wrong", arguments: [
        (#"{"id": "a"}"#, "edits"),
        (#"[]"#, "edits"),
        (#"[{"id": "a", "source": "x", "targets": ["y"]}, {"id": "b", "source": "x", "targets": ["y"], "mode": "swap"}]"#, "edits[1] ('b').mode"),
        (#"[{"id": "a", "source": "x", "targets": ["y"]}, {"id": "a", "source": "x", "targets": ["z"]}]"#, "edits[1].id"),
        (#"[{"id": "a", "source": "x", "targets": ["y"]}, 7]"#, "edits[1].edit"),
        ("[{", "edits"),
    ])
    func batches(_ text: String, field: String) {
        do {
            _ = try EditSpec.batch(json: text)
            Issue.record("\(text) was accepted")
        } catch {
            #expect((error as? EditError)?.field == field, "\(text): \(error)")
        }
    }

    @Test("the InstructPix2Pix recipe's options: Euler ancestral, its self-attention variant, shared or independent noise")
    func recipeOptions() throws {
        let spec = try parse(#"""
            {"id": "r", "source": "a cat", "targets": ["a cat wearing a hat"], "scheduler": "euler-a", "self_replace": 0.45,
             "self_replace_variant": "instruct-pix2pix", "ancestral_noise": "independent", "cross_replace": 0}
            """#)
        #expect(spec.scheduler == SchedulerChoice(className: "EulerAncestralDiscreteScheduler") && spec.selfReplaceVariant == .instructPix2Pix)
        #expect(spec.ancestralNoise == .independent && spec.selfReplace == StepRange(end: 0.45))
        #expect(try EditSpec(json: spec.json) == spec)
        // At their defaults they are not written, so older specs read the same.
        let plain = try parse(#"{"id": "p", "source": "a cat", "targets": ["a dog"]}"#)
        #expect(plain.json["self_replace_variant"] == nil && plain.json["ancestral_noise"] == nil)
        // The schedulers that draw noise after the start: Euler ancestral and LCM.
        #expect(SchedulerChoice.ancestralClassNames == ["EulerAncestralDiscreteScheduler", "LCMScheduler"])
        #expect(try parse(#"{"id": "l", "source": "a cat", "targets": ["a dog"], "scheduler": "lcm", "ancestral_noise": "independent"}"#)
            .scheduler == SchedulerChoice(className: "LCMScheduler"))
    }

}

@Suite("strict JSON for hand-written specs: duplicates refused, errors placed")
struct StrictJSONTests {
    /// Numbers as doubles: JSONDecoder reads 3e2 as an integer, the strict reader as a double.
    func normalised(_ value: JSONValue) -> JSONValue {
        switch value {
        case .int(let v): return .double(Double(v))
        case .array(let items): return .array(items.map(normalised))
        case .object(let members): return .object(members.mapValues(normalised))
        default: return value
        }
    }

    @Test("valid JSON reads as JSONDecoder reads it", arguments: [
        #"{"a": [1, -2.5, 3e2, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {}}"#,
        "  [ ]  ", #""plain""#, "0", "-0.0", "12345678901234567890",
    ])
    func valid(_ text: String) throws {
        #expect(normalised(try StrictJSON.parse(text)) == normalised(try JSONValue.parse(Data(text.utf8))))
    }

    @Test("mistakes are refused with their line and column", arguments: [
        (#"{"id": "a", "id": "b"}"#, 1, 13, "given twice"),
        ("{\"id\": \"a\",\n \"targets\": [\"y\",]}", 2, 18, "trailing comma"),
        (#"{"id": "a" "source": "x"}"#, 1, 12, "expected ','"),
        (#"{"id": 'a'}"#, 1, 8, "expected a value"),
        (#"{"seed": 01}"#, 1, 10, "start with 0"),
        (#"{"seed": NaN}"#, 1, 10, "expected a value"),
        (#"{"id": "a"} x"#, 1, 13, "after the JSON value"),
        (#"{"id": "a\q"}"#, 1, 10, "not a JSON escape"),
        (#"{"id": "\ud800"}"#, 1, 15, "surrogate"),
        (#"{"steps": 1e400}"#, 1, 11, "out of range"),
        (String(repeating: "[", count: 100), 1, 65, "nested deeper"),
        (#"{"id": "a"#, 1, 8, "never ends"),
    ])
    func refused(_ text: String, line: Int, column: Int, problem: String) {
        do {
            _ = try StrictJSON.parse(text)
            Issue.record("\(text) was accepted")
        } catch let error as StrictJSON.SyntaxError {
            #expect(error.line == line && error.column == column && error.problem.contains(problem), "\(text): \(error)")
        } catch {
            Issue.record("\(text): \(error)")
        }
    }
}
