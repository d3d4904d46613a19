import Engine
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
            {"id": "e-1", "source": "a cat", "targets": ["a dog", "a big dog"], "mode": "refine",
             "cross_replace": {"default": 0.8, "dog": [0.1, 0.4]}, "self_replace": 1, "blend": ["cat", ["dog"], ["big", "dog"]],
             "reweight": {"dog": -1}, "seed": 8888, "steps": 20, "guidance": 7, "height": 512, "width": 512,
             "super_resolution": false, "blend_subtract": [[], [], ["big"]], "blend_subtract_threshold": 0.6, "start_blend": 0.1}
            """#)
        #expect(spec.blendSubtract == [[], [], ["big"]] && spec.blendSubtractThreshold == 0.6 && spec.startBlend == 0.1)
        #expect(spec.targets == ["a dog", "a big dog"] && spec.mode == .refine && spec.seed == 8888)
        #expect(spec.crossReplace.range == StepRange(end: 0.8) && spec.crossReplace.words["dog"] == StepRange(start: 0.1, end: 0.4))
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
    }

    @Test("bad specs are refused by field", arguments: [
        (#"{"id": "a", "source": "x", "targets": ["y"], "colour": 1}"#, "colour"),
        (#"{"source": "x", "targets": ["y"]}"#, "id"),
        (#"{"id": "../up", "source": "x", "targets": ["y"]}"#, "id"),
        (#"{"id": "a", "targets": ["y"]}"#, "source"),
        (#"{"id": "a", "source": "x", "targets": []}"#, "targets"),
        (#"{"id": "a", "source": "x", "targets": ["y", 3]}"#, "targets[1]"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "mode": "swap"}"#, "mode"),
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
        (#"{"id": "a", "source": "x", "targets": ["y"], "steps": 2.5}"#, "steps"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "guidance": -2}"#, "guidance"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "precision": "fp16"}"#, "precision"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "scheduler": "lms"}"#, "scheduler"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "scheduler": {"solver_order": 2}}"#, "scheduler"),
        (#"{"id": "a", "source": "x", "targets": ["y"], "scheduler": "euler,karras"}"#, "scheduler"),
        // A real image is inverted and edited with DDIM.
        (#"{"id": "a", "source": "x", "targets": ["y"], "image": "p.png", "scheduler": "euler"}"#, "scheduler"),
    ])
    func refused(_ text: String, field: String) {
        let found = error(text)
        #expect(found?.field == field, "\(text) gave \(found.map { "\($0)" } ?? "no error")")
        #expect(!(found?.fix.isEmpty ?? true))
    }

    @Test("model-dependent checks: replace with unequal words, absent words, long prompts")
    func modelChecks() throws {
        let editor = PromptToPromptEditor(model: try DiffusionModel(directory: Fixtures.url("p2p-sd")))
        func check(_ text: String) -> EditError? {
            do { try editor.validate(try parse(text)); return nil } catch { return error as? EditError }
        }
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a big red circle"], "mode": "replace", "height": 128, "width": 128}"#)?.field == "mode")
        // Repeated spaces do not make words: these have three words each.
        #expect(check(#"{"id": "a", "source": "a  red circle", "targets": ["a red  square "], "mode": "replace", "height": 128, "width": 128}"#) == nil)
        #expect(try parse(#"{"id": "a", "source": "a  red circle", "targets": ["a red  square "]}"#).resolvedMode == .replace)
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "blend": [["circle"], ["circle"]], "height": 128, "width": 128}"#)?.field == "blend[1]")
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "reweight": {"circle": 2}, "height": 128, "width": 128}"#)?.field == "reweight.circle")
        // With several edited prompts, a word reweights those that have it.
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square", "a blue circle"], "reweight": {"square": 2}, "height": 128, "width": 128}"#) == nil)
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "cross_replace": {"blue": 0.2}, "height": 128, "width": 128}"#)?.field == "cross_replace.blue")
        let long = String(repeating: "red ", count: 80)
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["\#(long)"], "height": 128, "width": 128}"#)?.field == "targets[0]")
        #expect(check(#"{"id": "a", "source": "a red circle", "targets": ["a red square"], "height": 128, "width": 128}"#) == nil)
        // Matching ignores case and trailing punctuation.
        #expect(check(#"{"id": "a", "source": "A red Circle.", "targets": ["A red Square."], "blend": [["circle"], ["square"]], "height": 128, "width": 128}"#) == nil)
    }
}
