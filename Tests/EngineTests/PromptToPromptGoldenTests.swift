import EditContract
@testable import Engine
import Imaging
import Foundation
import Testing

@Suite("Prompt-to-Prompt against the diffusers-based reference (golden fixtures)")
struct PromptToPromptGoldenTests {
    struct Case: Decodable {
        let prompts: [String]
        let mode: String
        let steps: Int
        let seed: UInt64
        let guidance: Double
        let reweight: [String: Double]?
        let cross_words: [String: Double]?
        let blend: [[String]]?
        let self_range: [Double]?
        let threshold: Double?
        let subtract: [[String]]?
        let subtract_threshold: Double?
        let start_blend: Double?
    }

    static let cases: [String: Case] = {
        try! JSONDecoder().decode([String: Case].self, from: Data(contentsOf: Fixtures.url("p2p-golden.json")))
    }()
    static let model: DiffusionModel = { try! DiffusionModel(directory: Fixtures.url("p2p-sd")) }()

    func spec(_ name: String, mode: EditMode? = nil) -> EditSpec {
        let c = Self.cases[name]!
        var spec = EditSpec(id: name, source: c.prompts[0], targets: Array(c.prompts.dropFirst()))
        spec.mode = mode ?? EditMode(rawValue: c.mode)!
        spec.seed = c.seed
        spec.steps = c.steps
        spec.guidance = c.guidance
        spec.height = 128
        spec.width = 128
        spec.reweight = c.reweight ?? [:]
        spec.crossReplace = CrossReplaceSchedule(StepRange(end: 0.8), words: (c.cross_words ?? [:]).mapValues { StepRange(end: $0) })
        if let range = c.self_range { spec.selfReplace = StepRange(start: range[0], end: range[1]) }
        spec.blend = c.blend
        if let threshold = c.threshold { spec.blendThreshold = threshold }
        spec.blendSubtract = c.subtract
        if let threshold = c.subtract_threshold { spec.blendSubtractThreshold = threshold }
        if let start = c.start_blend { spec.startBlend = start }
        return spec
    }

    @Test("final latents, stored attention maps and LocalBlend masks",
          arguments: ["replace", "refine", "reweight-refine", "blend", "replace-tokens", "reweight-replace", "blend-subtract"])
    func golden(_ name: String) throws {
        let golden = try Fixtures.tensors("p2p-golden.safetensors")
        let editor = PromptToPromptEditor(model: Self.model)
        let spec = spec(name)
        try editor.validate(spec)
        let settings = editor.settings(for: spec)
        let controller = try #require(try editor.controller(for: spec, settings: settings, storeAttention: true) as? PromptToPromptController)
        let latents = try Sampler(model: Self.model).sample(prompts: spec.prompts, settings: settings, controller: controller)
        expectRelative(latents, try golden.tensor("\(name).latents"), relative: 1e-4, "\(name) latents")

        var compared = 0
        for (index, layer) in controller.store.layers {
            let expected = try golden.tensor("\(name).maps.\(index)")
            expectRelative(layer.averaged(steps: controller.store.steps).reshaped(expected.shape), expected, relative: 1e-4, "\(name) maps of layer \(index) (\(layer.site))")
            compared += 1
        }
        #expect(compared == golden.tensorNames.filter { $0.hasPrefix("\(name).maps.") }.count && compared > 0)

        if let blend = controller.localBlend {
            let mask = try #require(blend.masks(store: controller.store, step: settings.steps - 1, height: 16, width: 16))
            let expected = try golden.tensor("\(name).mask")
            let actual = Tensor(shape: expected.shape, values: mask.flatMap { $0 })
            #expect(actual.maxAbsDifference(expected) == 0, "LocalBlend mask differs in \(actual.maxAbsDifference(expected) > 0 ? "some" : "no") pixels")
            // The mask is a real region: neither empty nor everything.
            let covered = mask[1].reduce(0, +)
            #expect(covered > 0 && covered < 256)
        }
    }

    struct SamplerCase: Decodable {
        let `case`: String
        let scheduler: String
        let overrides: [String: JSONValue]
        let steps: Int
    }

    @Test("edits under DPM-Solver++ and Euler equal the reference's, and differ from the no-control baseline",
          arguments: ["replace-dpm2m-karras", "refine-dpm2m-karras", "blend-dpm2m", "reweight-refine-euler", "replace-euler-karras"])
    func goldenSamplers(_ name: String) throws {
        let cases = try JSONDecoder().decode([String: SamplerCase].self, from: Data(contentsOf: Fixtures.url("p2p-samplers.json")))
        let c = try #require(cases[name])
        let golden = try Fixtures.tensors("p2p-samplers.safetensors")
        var spec = spec(c.case)
        spec.steps = c.steps
        spec.scheduler = SchedulerChoice(className: c.scheduler, overrides: c.overrides)
        let editor = PromptToPromptEditor(model: Self.model)
        let edited = try editor.runStageOne(spec).output
        expectRelative(edited, try golden.tensor("\(name).latents"), relative: 1e-4, "\(name) latents")
        spec.mode = .none
        (spec.blend, spec.blendSubtract, spec.reweight) = (nil, nil, [:])
        let baseline = try editor.runStageOne(spec).output
        expectRelative(baseline, try golden.tensor("\(name).baseline"), relative: 1e-4, "\(name) baseline")
        // Control is applied: the edited prompts move away from the baseline.
        #expect(edited.slice(1..<edited.shape[0]).maxAbsDifference(baseline.slice(1..<baseline.shape[0])) > 0.1)
    }

    @Test("LocalBlend and the attention pictures work on portrait and odd-sized latents",
          arguments: [(160, 96), (136, 136)])
    func anyLatentShape(height: Int, width: Int) throws {
        // 160x96 px is a 20x12 latent (blend grid 5x3); 136 px is 17x17 (grids 17, 9, 5).
        var spec = spec("blend")
        (spec.height, spec.width) = (height, width)
        let editor = PromptToPromptEditor(model: Self.model)
        let settings = editor.settings(for: spec)
        let controller = try #require(try editor.controller(for: spec, settings: settings, storeAttention: true) as? PromptToPromptController)
        let latents = try Sampler(model: Self.model).sample(prompts: spec.prompts, settings: settings, controller: controller)
        let (rows, columns) = (latents.shape[2], latents.shape[3])
        let grid = try editor.attentionGrid(latentHeight: rows, latentWidth: columns)
        #expect(grid == AttentionGrid(height: (rows + 3) / 4, width: (columns + 3) / 4))
        let blend = try #require(controller.localBlend)
        let mask = try #require(blend.masks(store: controller.store, step: settings.steps - 1, height: rows, width: columns),
                                "no LocalBlend mask for a \(rows)x\(columns) latent")
        let covered = mask[1].reduce(0, +)
        #expect(covered > 0 && covered < Float(rows * columns), "the mask covers \(covered) of \(rows * columns) latent pixels")

        let stage = try editor.runStageOne(spec, attentionMaps: true)
        let attention = try #require(stage.attention)
        #expect(attention.count == spec.prompts.count)
        for prompt in attention {
            #expect(prompt.grid == grid && prompt.maps.allSatisfy { $0.count == grid.queries })
            #expect(prompt.maps.contains { $0.contains { $0 > 0 } }, "empty attention maps for \"\(prompt.prompt)\"")
        }
        // Cells follow the grid's aspect ratio (reading every map element: an out-of-range
        // index would trap here).
        let wide = AttentionPicture.render(attention[0], cell: 60), narrow = AttentionPicture.render(attention[0], cell: 30)
        #expect(wide.height - narrow.height == 60 * grid.height / grid.width - 30 * grid.height / grid.width)
    }

    @Test("low-memory mode (the guidance halves as two UNet calls) gives the same edit")
    func lowMemory() throws {
        let editor = PromptToPromptEditor(model: Self.model)
        for name in ["blend", "reweight-refine"] {
            let spec = spec(name)
            let golden = try Fixtures.tensors("p2p-golden.safetensors").tensor("\(name).latents")
            let normal = try editor.runStageOne(spec).output
            let split = try editor.runStageOne(spec, lowMemory: true).output
            expectRelative(split, normal, relative: 1e-5, "\(name): low-memory against batched")
            expectRelative(split, golden, relative: 1e-4, "\(name): low-memory against the reference")
        }
    }

    @Test("control is applied: edited prompts differ from the no-control baseline, the source does not")
    func controlIsApplied() throws {
        let golden = try Fixtures.tensors("p2p-golden.safetensors")
        let sampler = Sampler(model: Self.model)
        let editor = PromptToPromptEditor(model: Self.model)
        for name in ["replace", "refine", "blend"] {
            let edited = spec(name)
            let baseline = spec(name, mode: EditMode.none)
            let settings = editor.settings(for: edited)
            let controlled = try sampler.sample(prompts: edited.prompts, settings: settings,
                                                controller: try editor.controller(for: edited, settings: settings, storeAttention: false))
            let plain = try sampler.sample(prompts: baseline.prompts, settings: settings,
                                           controller: try editor.controller(for: baseline, settings: settings, storeAttention: false))
            expectRelative(plain, try golden.tensor("\(name).baseline"), relative: 1e-4, "\(name) baseline")
            let count = edited.prompts.count
            // The source row is never modified.
            #expect(controlled.slice(0..<1).maxAbsDifference(plain.slice(0..<1)) <= 1e-5)
            // Every edited row moved away from its baseline by far more than numerical noise.
            for row in 1..<count {
                let editedRow = controlled.slice(row..<(row + 1)), plainRow = plain.slice(row..<(row + 1))
                let change = editedRow.maxAbsDifference(plainRow)
                #expect(change > 0.01 * plainRow.maxAbs, "\(name) row \(row) is (nearly) the baseline: change \(change)")
            }
        }
        // With the whole schedule injected and an identity word swap, the edited prompt's stored
        // cross-attention is the source's in every layer.
        var full = spec("replace")
        full.crossReplace = CrossReplaceSchedule(StepRange(end: 1))
        let settings = editor.settings(for: full)
        let controller = try #require(try editor.controller(for: full, settings: settings, storeAttention: true) as? PromptToPromptController)
        _ = try sampler.sample(prompts: full.prompts, settings: settings, controller: controller)
        #expect(!controller.store.layers.isEmpty)
        for layer in controller.store.layers.values {
            let half = layer.values.count / 2
            let source = Tensor(shape: [half], values: Array(layer.values[..<half]))
            let target = Tensor(shape: [half], values: Array(layer.values[half...]))
            #expect(source.maxAbsDifference(target) <= 1e-5 * source.maxAbs, "layer \(layer.site) was not replaced")
        }
    }

    @Test("self-attention is injected only up to the configured grid side")
    func selfInjectionLimit() throws {
        let sampler = Sampler(model: Self.model)
        let editor = PromptToPromptEditor(model: Self.model)
        func run(_ change: (inout EditSpec) -> Void) throws -> Tensor {
            var edit = spec("replace")
            edit.selfReplace = StepRange(end: 1)
            change(&edit)
            let settings = editor.settings(for: edit)
            return try sampler.sample(prompts: edit.prompts, settings: settings,
                                      controller: try editor.controller(for: edit, settings: settings, storeAttention: false))
        }
        let standard = try run { _ in }
        let noSelf = try run { $0.selfReplace = StepRange(end: 0) }
        // A side smaller than every self-attention grid injects nowhere: as no injection at all.
        let none = try run { $0.selfReplaceSide = 1 }
        #expect(none.maxAbsDifference(noSelf) <= 1e-6)
        // The default injects at the small grids; a larger side reaches the larger ones too (by
        // far more than the 1e-5 relative noise of these runs).
        let all = try run { $0.selfReplaceSide = 16 }
        let edited = 1..<2
        #expect(standard.slice(edited).maxAbsDifference(noSelf.slice(edited)) > 1e-3 * noSelf.maxAbs)
        #expect(all.slice(edited).maxAbsDifference(standard.slice(edited)) > 1e-3 * noSelf.maxAbs)
        // The source row never changes.
        #expect(all.slice(0..<1).maxAbsDifference(noSelf.slice(0..<1)) <= 1e-5)
    }
}

@Suite("real-image editing through inversion")
struct InversionTests {
    @Test("direct inversion reproduces the image in the source branch; DDIM inversion alone drifts")
    func inversion() throws {
        let model = PromptToPromptGoldenTests.model
        let editor = PromptToPromptEditor(model: model)
        // A picture the model drew, as a PNG.
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let sampler = Sampler(model: model)
        let settings = SamplingSettings(steps: 10, guidance: 7.5, seed: 3, height: 128, width: 128)
        let picture = RGBImage(tensor: try sampler.generate(prompt: "a red circle on a blue background", settings: settings))
        let url = directory.appendingPathComponent("picture.png")
        try PNGCodec.write(picture, to: url)

        var spec = EditSpec(id: "real", source: "a red circle on a blue background", targets: ["a green circle on a blue background"])
        spec.steps = 10
        spec.height = 128
        spec.width = 128
        spec.image = url.path
        let direct = try editor.runStageOne(spec, picture: try PictureFile.read(url))
        let encoded = ImageInversion(model: model).encode(ImageInversion.tensor(of: picture, height: 128, width: 128), precision: .fp32)
        // The source row ends exactly on the encoded image.
        #expect(direct.output.slice(0..<1).maxAbsDifference(encoded) == 0)
        #expect(direct.output.slice(1..<2).maxAbsDifference(encoded) > 0)

        spec.inversion = .ddim
        let plain = try editor.runStageOne(spec, picture: picture)
        #expect(plain.output.slice(0..<1).maxAbsDifference(encoded) > 1e-3)

        // The engine opens no path a spec names: an image without its picture is refused.
        let missing = #expect(throws: EditError.self) { try editor.runStageOne(spec) }
        #expect(missing?.field == "image" && missing?.problem.contains("not given") == true)
    }

    @Test("an inversion cache gives the very trajectory: bit-identical edits, the second of a picture cached, keyed by prompt and size, bounded in bytes")
    func inversionCache() throws {
        let model = PromptToPromptGoldenTests.model
        let editor = PromptToPromptEditor(model: model)
        let settings = SamplingSettings(steps: 6, guidance: 7.5, seed: 3, height: 64, width: 64)
        let picture = RGBImage(tensor: try Sampler(model: model).generate(prompt: "a red circle on a blue background", settings: settings))
        var spec = EditSpec(id: "real", source: "a red circle on a blue background", targets: ["a green circle on a blue background"])
        (spec.steps, spec.height, spec.width, spec.image) = (6, 64, 64, "picture.png")
        spec.imageSHA256 = String(repeating: "0f", count: 32)
        let uncached = try editor.runStageOne(spec, picture: picture)
        #expect(uncached.inversion?.cached == false)

        let cache = InversionCache(capacityBytes: 64 << 20)
        let first = try editor.runStageOne(spec, picture: picture, inversions: cache)
        spec.targets = ["a yellow circle on a blue background"]
        let second = try editor.runStageOne(spec, picture: picture, inversions: cache)
        #expect(first.inversion?.cached == false && second.inversion?.cached == true)
        #expect(first.output.maxAbsDifference(uncached.output) == 0)
        #expect(second.output.maxAbsDifference(try editor.runStageOne(spec, picture: picture).output) == 0)
        #expect(cache.usage.entries == 1)
        // Another source prompt, or another size, is another inversion.
        spec.source = "a red square on a blue background"
        spec.targets = ["a green square on a blue background"]
        #expect(try editor.runStageOne(spec, picture: picture, inversions: cache).inversion?.cached == false)
        spec.height = 128
        #expect(try editor.runStageOne(spec, picture: picture, inversions: cache).inversion?.cached == false)
        #expect(cache.usage.entries == 3)
        // A bound of one trajectory keeps only the latest.
        let small = InversionCache(capacityBytes: cache.usage.bytes / 3 + 1)
        spec.height = 64
        _ = try editor.runStageOne(spec, picture: picture, inversions: small)
        spec.source = "a red circle on a blue background"
        spec.targets = ["a green circle on a blue background"]
        _ = try editor.runStageOne(spec, picture: picture, inversions: small)
        #expect(small.usage.entries == 1 && small.usage.bytes <= small.capacity)
    }

    @Test("a picture is edited at its own size rounded down to the model's multiple, or scaled to the model's area when larger; height and width override")
    func pictureSizes() throws {
        let model = PromptToPromptGoldenTests.model
        let editor = PromptToPromptEditor(model: model)
        let (defaultHeight, defaultWidth) = (model.defaults.height, model.defaults.width)
        func size(_ width: Int, _ height: Int) -> (Int, Int) {
            editor.editSize(of: RGBImage(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height * 3)))
        }
        // Smaller than the model's area: its own size, rounded down to multiples of 8.
        let small = size(defaultWidth / 2 + 5, defaultHeight / 2 + 3)
        #expect(small.0 == defaultHeight / 2 && small.1 == defaultWidth / 2, "\(small)")
        // A photograph 6x the model's side on one axis and 4.5x on the other: scaled to the
        // model's area, aspect kept within a multiple.
        let large = size(defaultWidth * 6, defaultHeight * 9 / 2)
        #expect(large.0 % 8 == 0 && large.1 % 8 == 0 && large.0 * large.1 <= defaultHeight * defaultWidth, "\(large)")
        #expect(abs(Double(large.1) / Double(large.0) - 6 / 4.5) < 0.15, "\(large)")
        var spec = EditSpec(id: "real", source: "a red circle on a blue background", targets: ["a green circle on a blue background"])
        spec.image = "p.png"
        spec.width = 64
        let wide = RGBImage(width: 200, height: 40, pixels: [UInt8](repeating: 0, count: 200 * 40 * 3))
        let settings = editor.settings(for: spec, picture: wide)
        #expect(settings.width == 64 && settings.height == 40)
        // A very long, thin picture stays within the largest side an edit may have.
        let thin = size(40_000, 4)
        #expect(thin.1 <= EditSpec.maximumImageSide && thin.0 >= 8, "\(thin)")
        // Overrides of the training schedule are refused for real images (the inversion steps on
        // the model's own), by name, before anything runs.
        spec.width = nil
        spec.scheduler = SchedulerChoice(className: "DDIMScheduler", overrides: ["num_train_timesteps": .int(2000)])
        let override = #expect(throws: EditError.self) { try editor.runStageOne(spec, picture: wide) }
        #expect(override?.field == "scheduler" && override?.problem.contains("training schedule") == true, "\(String(describing: override))")
    }

    struct RealCase: Decodable { let prompts: [String]; let scheduler: String; let steps: Int; let inversion: String; let guidance: Double; let timesteps: [Int] }

    @Test("real-image edits equal the reference (reference/real_image_reference.py): direct, DDIM and negative-prompt inversion, DDIM at 10 steps and DPM-Solver++ at 20, and on SDXL",
          arguments: ["direct-ddim", "ddim-ddim", "negative-prompt-ddim", "direct-dpm", "negative-prompt-dpm", "sdxl-direct-ddim", "sdxl-negative-prompt-dpm"])
    func realImageReference(_ name: String) throws {
        let cases = try JSONDecoder().decode([String: RealCase].self, from: Data(contentsOf: Fixtures.url("p2p-real.json")))
        let c = try #require(cases[name])
        let golden = try Fixtures.tensors("p2p-real.safetensors")
        let sdxl = name.hasPrefix("sdxl-")
        let model = sdxl ? PromptToPromptSDXLTests.model : PromptToPromptGoldenTests.model
        let editor = PromptToPromptEditor(model: model)
        let picture = try PictureFile.read(Fixtures.url("p2p-real.png"))
        var spec = EditSpec(id: name, source: c.prompts[0], targets: Array(c.prompts.dropFirst()))
        (spec.mode, spec.steps, spec.guidance, spec.image) = (.replace, c.steps, c.guidance, "p2p-real.png")
        spec.inversion = try #require(InversionMethod(rawValue: c.inversion))
        spec.scheduler = SchedulerChoice(className: c.scheduler)
        try spec.validate()
        let settings = editor.settings(for: spec, picture: picture)
        #expect(settings.height == 128 && settings.width == 128, "a 128 px picture is edited at its own size")
        #expect(try editor.inversionTimesteps(settings) == c.timesteps)
        let sample = ImageInversion(model: model).encode(ImageInversion.tensor(of: picture, height: 128, width: 128), precision: .fp32)
        expectRelative(sample, try golden.tensor(sdxl ? "sdxl-sample" : "sample"), relative: 1e-4, "\(name) encoded picture")
        let (path, _) = try editor.invert(picture, spec: spec, settings: settings, cache: nil)
        expectRelative(path[path.count - 1], try golden.tensor("\(name).start"), relative: 1e-4, "\(name) inversion")
        let edited = try editor.runStageOne(spec, picture: picture).output
        let reference = try golden.tensor("\(name).latents")
        // The tiny SDXL's config leaves clip_sample at DDIM's default (true): its latents are
        // clipped to [-1, 1], so their scale is 1 and float differences near the clip show whole.
        expectRelative(edited, reference, relative: name == "sdxl-direct-ddim" ? 2.5e-4 : 1e-4, "\(name) latents")
        print("[reference] real image \(name): max abs error \(edited.maxAbsDifference(reference)), scale \(reference.maxAbs)")
    }

    @Test("a mask keeps every edited row on the source outside it, with or without a picture or LocalBlend; inside, the edit happens")
    func mask() throws {
        let model = PromptToPromptGoldenTests.model
        let editor = PromptToPromptEditor(model: model)
        // White on the left half of the picture: the left half of the 16 x 16 latent is editable.
        var pixels = [UInt8](repeating: 0, count: 128 * 128 * 3)
        for y in 0..<128 { for x in 0..<64 { for c in 0..<3 { pixels[(y * 128 + x) * 3 + c] = 255 } } }
        let mask = RGBImage(width: 128, height: 128, pixels: pixels)
        var spec = EditSpec(id: "masked", source: "a red circle on a blue background", targets: ["a green circle on a blue background"])
        (spec.steps, spec.height, spec.width, spec.mask) = (6, 128, 128, "mask.png")
        func check(_ output: Tensor, _ what: String) {
            var outside: Float = 0, inside: Float = 0
            output.withUnsafeBufferPointer { x in
                let plane = 16 * 16, channels = output.shape[1]
                for c in 0..<channels {
                    for i in 0..<plane {
                        let d = abs(x[(channels + c) * plane + i] - x[c * plane + i])
                        if i % 16 < 8 { inside = max(inside, d) } else { outside = max(outside, d) }
                    }
                }
            }
            #expect(outside == 0, "\(what): the edited row differs from the source outside the mask by \(outside)")
            #expect(inside > 0.05, "\(what): no edit inside the mask (\(inside))")
        }
        check(try editor.runStageOne(spec, mask: mask).output, "generated")
        spec.blend = [["circle"], ["circle"]]
        check(try editor.runStageOne(spec, mask: mask).output, "with LocalBlend")
        spec.blend = nil
        let picture = RGBImage(tensor: try Sampler(model: model).generate(prompt: spec.source, settings: editor.settings(for: spec)))
        spec.image = "picture.png"
        check(try editor.runStageOne(spec, picture: picture, mask: mask).output, "a real picture")
        // Named but not given, and given but not named, are refused.
        #expect((#expect(throws: EditError.self) { try editor.runStageOne(spec, picture: picture) })?.field == "mask")
        spec.mask = nil
        #expect((#expect(throws: EditError.self) { try editor.runStageOne(spec, picture: picture, mask: mask) })?.field == "mask")
    }
}
