import EditContract
@testable import Engine
import Foundation
import Testing

/// Prompt-to-Prompt on SDXL: the same controllers over both cross-attention levels' transformer
/// blocks (two layers per block at the deepest), words counted by the first tokenizer,
/// LocalBlend at a quarter of the latent side, against the diffusers-based reference driving
/// StableDiffusionXLPipeline's own conditioning.
@Suite("Prompt-to-Prompt on SDXL against the diffusers-based reference")
struct PromptToPromptSDXLTests {
    struct Case: Decodable {
        let prompts: [String]
        let mode: String
        let steps: Int
        let seed: UInt64
        let guidance: Double
        let height: Int
        let width: Int
        let blend: [[String]]?
        let threshold: Double?
        let reweight: [String: Double]?
    }

    static let model: DiffusionModel = { try! DiffusionModel(directory: Fixtures.url("tiny-sdxl")) }()

    @Test("replace, refine, and LocalBlend with reweighting: final latents, stored attention maps, masks",
          arguments: ["sdxl-replace", "sdxl-refine", "sdxl-blend"])
    func golden(_ name: String) throws {
        let cases = try JSONDecoder().decode([String: Case].self, from: Data(contentsOf: Fixtures.url("p2p-sdxl.json")))
        let c = try #require(cases[name])
        let golden = try Fixtures.tensors("p2p-sdxl.safetensors")
        var spec = EditSpec(id: name, source: c.prompts[0], targets: Array(c.prompts.dropFirst()))
        spec.mode = try #require(EditMode(rawValue: c.mode))
        (spec.seed, spec.steps, spec.guidance, spec.height, spec.width) = (c.seed, c.steps, c.guidance, c.height, c.width)
        spec.blend = c.blend
        if let threshold = c.threshold { spec.blendThreshold = threshold }
        spec.reweight = c.reweight ?? [:]
        let editor = PromptToPromptEditor(model: Self.model)
        try editor.validate(spec)
        let settings = editor.settings(for: spec)
        let controller = try #require(try editor.controller(for: spec, settings: settings, storeAttention: true) as? PromptToPromptController)
        let latents = try Sampler(model: Self.model).sample(prompts: spec.prompts, settings: settings, controller: controller)
        let expected = try golden.tensor("\(name).latents")
        print("[reference] \(name) latents: max abs error \(latents.maxAbsDifference(expected)), scale \(expected.maxAbs)")
        expectRelative(latents, expected, relative: 1e-4, "\(name) latents")

        var compared = 0
        for (index, layer) in controller.store.layers {
            let reference = try golden.tensor("\(name).maps.\(index)")
            expectRelative(layer.averaged(steps: controller.store.steps).reshaped(reference.shape), reference, relative: 1e-4, "\(name) maps of layer \(index) (\(layer.site))")
            compared += 1
        }
        // Both levels' blocks, the mid block's two layers and the up blocks' are stored.
        #expect(compared == golden.tensorNames.filter { $0.hasPrefix("\(name).maps.") }.count && compared == 11, "\(compared) layers")

        if let blend = controller.localBlend {
            let side = c.height / 8
            let mask = try #require(blend.masks(store: controller.store, step: settings.steps - 1, height: side, width: side))
            let reference = try golden.tensor("\(name).mask")
            #expect(Tensor(shape: reference.shape, values: mask.flatMap { $0 }).maxAbsDifference(reference) == 0)
            let covered = mask[1].reduce(0, +)
            #expect(covered > 0 && covered < Float(side * side))
        }
        // Control is applied: the edited prompt moves away from the no-control baseline.
        let baseline = try golden.tensor("\(name).baseline")
        #expect(latents.slice(1..<latents.shape[0]).maxAbsDifference(baseline.slice(1..<baseline.shape[0])) > 0.1)
        spec.mode = .none
        (spec.blend, spec.reweight) = (nil, [:])
        expectRelative(try editor.runStageOne(spec).output, baseline, relative: 1e-4, "\(name) baseline")
    }

    @Test("both tokenizers must split the prompts alike: word indices count the first tokenizer's tokens")
    func tokenizersAgree() throws {
        // SDXL's tokenizer and tokenizer_2 split every prompt alike (one vocabulary and merges).
        let editor = PromptToPromptEditor(model: Self.model)
        try editor.validate(EditSpec(id: "e", source: "A painting of a squirrel eating a burger!", targets: ["A painting of a cat eating a hot-dog, 4k"]))
        // A second tokenizer with another vocabulary is refused by prompt.
        let folder = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let copy = folder.appendingPathComponent("mixed-sdxl")
        try FileManager.default.copyItem(at: Fixtures.url("tiny-sdxl"), to: copy)
        try FileManager.default.removeItem(at: copy.appendingPathComponent("tokenizer_2"))
        try FileManager.default.copyItem(at: Fixtures.url("tiny-sd/tokenizer"), to: copy.appendingPathComponent("tokenizer_2"))
        let mixed = PromptToPromptEditor(model: try DiffusionModel(directory: copy))
        #expect(throws: EditError.self) { try mixed.validate(EditSpec(id: "e", source: "a red circle", targets: ["a blue circle"])) }
    }
}
