import EditContract
@testable import Engine
import Foundation
import Testing

/// SDXL read as diffusers' StableDiffusionXLPipeline saves it, generating as that pipeline does.
@Suite("SDXL text-to-image against diffusers' StableDiffusionXLPipeline")
struct SDXLPipelineTests {
    struct Run: Decodable {
        let prompt: String
        let negative_prompt: String?
        let seed: UInt64
        let steps: Int
        let guidance: Float
        let original_size: [Int]?
        let crops_coords_top_left: [Int]?
    }

    /// tiny-sdxl: two text encoders of different widths (the second with a projection, its
    /// tokenizer padding with "!"), a text_time UNet with two transformer layers at its deepest
    /// level, SDXL's VAE scaling factor and Euler scheduler. Runs: zeroed negative embeddings
    /// (no negative prompt), a negative prompt, and an original size and crop corner.
    @Test("a random-weight SDXL directory gives diffusers' image for the same prompt and seed")
    func tinySDXL() throws {
        let model = try DiffusionModel(directory: Fixtures.url("tiny-sdxl"))
        #expect(model.sdxl?.forceZerosForEmptyPrompt == true && model.unet.configuration.textTimeEmbedding != nil)
        #expect(model.autoencoder?.configuration.scalingFactor == 0.13025)
        let runs = try JSONDecoder().decode([String: Run].self, from: Data(contentsOf: Fixtures.url("tiny-sdxl-pipeline.json")))
        let expected = try Fixtures.tensors("tiny-sdxl-pipeline.safetensors")
        let sampler = Sampler(model: model)
        var images: [String: Tensor] = [:]
        for (tag, run) in runs.sorted(by: { $0.key < $1.key }) {
            let settings = SamplingSettings(steps: run.steps, guidance: run.guidance, seed: run.seed, height: 64, width: 64,
                                            negativePrompt: run.negative_prompt, originalSize: run.original_size,
                                            cropsCoordsTopLeft: run.crops_coords_top_left)
            let image = try sampler.generate(prompt: run.prompt, settings: settings)
            let reference = try expected.tensor("\(tag).image")
            let quality = psnr(image, reference)
            let clamped = image.mapElements { min(max($0, -1), 1) }
            print("[reference] pipeline tiny-sdxl \(tag): PSNR \(quality) dB, max abs error \(clamped.maxAbsDifference(reference)) (on [-1, 1])")
            #expect(quality >= 40, "PSNR \(quality) dB for \(run.prompt)")
            images[tag] = image
            var lowMemory = settings
            lowMemory.lowMemory = true
            #expect(try sampler.generate(prompt: run.prompt, settings: lowMemory).maxAbsDifference(image) <= 1e-4)
        }
        // The conditions matter: an empty negative prompt is not the zeroed one, and the size
        // conditioning changes the image.
        let a = try #require(runs["a"])
        var empty = SamplingSettings(steps: a.steps, guidance: a.guidance, seed: a.seed, height: 64, width: 64, negativePrompt: "")
        #expect(try sampler.generate(prompt: a.prompt, settings: empty).maxAbsDifference(try #require(images["a"])) > 1e-3)
        empty.negativePrompt = nil
        empty.sizeConditioning = SizeConditioning(originalSize: [1024, 1024])
        #expect(try sampler.generate(prompt: a.prompt, settings: empty).maxAbsDifference(try #require(images["a"])) > 1e-3)
    }

    @Test("an edit's size options reach the model: its source row is the generation with them; other models refuse them")
    func sizeOptions() throws {
        let runs = try JSONDecoder().decode([String: Run].self, from: Data(contentsOf: Fixtures.url("tiny-sdxl-pipeline.json")))
        let c = try #require(runs["c"])
        var spec = EditSpec(id: "sized", source: c.prompt, targets: [c.prompt.replacingOccurrences(of: "horse", with: "camel")])
        (spec.seed, spec.steps, spec.guidance, spec.height, spec.width) = (c.seed, c.steps, Double(c.guidance), 64, 64)
        (spec.originalSize, spec.cropsCoordsTopLeft) = (c.original_size, c.crops_coords_top_left)
        let model = try DiffusionModel(directory: Fixtures.url("tiny-sdxl"))
        let editor = PromptToPromptEditor(model: model)
        try editor.validate(spec)
        let edited = try editor.runStageOne(spec).output
        let sampler = Sampler(model: model)
        let settings = SamplingSettings(steps: c.steps, guidance: c.guidance, seed: c.seed, height: 64, width: 64,
                                        originalSize: c.original_size, cropsCoordsTopLeft: c.crops_coords_top_left)
        let plain = try sampler.sample(prompts: [c.prompt], settings: settings)
        #expect(edited.slice(0..<1).maxAbsDifference(plain) <= 1e-4)
        // And that generation is diffusers' (run c).
        let image = sampler.decode(plain, precision: .fp32)
        #expect(psnr(image, try Fixtures.tensors("tiny-sdxl-pipeline.safetensors").tensor("c.image")) >= 40)

        let sd = PromptToPromptEditor(model: try DiffusionModel(directory: Fixtures.url("tiny-sd2")))
        var other = EditSpec(id: "o", source: "a cat", targets: ["a dog"])
        other.originalSize = [1024, 1024]
        let sizeError = #expect(throws: EditError.self) { try sd.validate(other) }
        #expect(sizeError?.field == "original_size")
        // Refused when given, whatever the value (the default crop corner too), by its own key.
        var crop = EditSpec(id: "c", source: "a cat", targets: ["a dog"])
        crop.cropsCoordsTopLeft = [0, 0]
        let cropError = #expect(throws: EditError.self) { try sd.validate(crop) }
        #expect(cropError?.field == "crops_coords_top_left")
        let generation = SamplingSettings(steps: 2, guidance: 5, seed: 0, height: 64, width: 64, cropsCoordsTopLeft: [0, 0])
        let generationError = #expect(throws: EditError.self) { try Sampler(model: sd.model).validate(generation) }
        #expect(generationError?.field == "crops_coords_top_left")
    }
}
