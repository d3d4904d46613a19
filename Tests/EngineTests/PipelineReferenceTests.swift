import EditContract
@testable import Engine
import Foundation
import Testing

/// Peak signal-to-noise ratio of two images in [-1, 1], on the [0, 1] scale the images are saved in.
func psnr(_ a: Tensor, _ b: Tensor) -> Double {
    let x = a.scalars, y = b.scalars
    var sum = 0.0
    for i in x.indices {
        let d = Double(min(max(x[i] / 2 + 0.5, 0), 1) - min(max(y[i] / 2 + 0.5, 0), 1))
        sum += d * d
    }
    let mse = sum / Double(x.count)
    return mse == 0 ? .infinity : 10 * log10(1 / mse)
}

@Suite("text-to-image against diffusers' StableDiffusionPipeline")
struct PipelineReferenceTests {
    struct Run: Decodable { let prompt: String; let seed: UInt64; let steps: Int; let guidance: Float }

    /// tiny-sd has the shapes-world vocabulary; tiny-sd-clip SD 1.x's CLIP vocabulary and tokenizer files;
    /// tiny-sd2 is SD 2.x-like (v-prediction, linear projections, upcast attention, GELU, "!" padding).
    @Test("a random-weight SD directory gives diffusers' image for the same prompt and seed", arguments: ["tiny-sd", "tiny-sd-clip", "tiny-sd2"])
    func tinyStableDiffusion(_ name: String) throws {
        let model = try DiffusionModel(directory: Fixtures.url(name))
        let runs = try JSONDecoder().decode([String: Run].self, from: Data(contentsOf: Fixtures.url("\(name)-pipeline.json")))
        let expected = try Fixtures.tensors("\(name)-pipeline.safetensors")
        let sampler = Sampler(model: model)
        for (tag, run) in runs.sorted(by: { $0.key < $1.key }) {
            let settings = SamplingSettings(steps: run.steps, guidance: run.guidance, seed: run.seed, height: 64, width: 64)
            let image = try sampler.generate(prompt: run.prompt, settings: settings)
            let reference = try expected.tensor("\(tag).image")
            let quality = psnr(image, reference)
            let clamped = image.mapElements { min(max($0, -1), 1) }
            print("[reference] pipeline \(name) \(tag): PSNR \(quality) dB, max abs error \(clamped.maxAbsDifference(reference)) (on [-1, 1])")
            #expect(quality >= 40, "PSNR \(quality) dB for \(run.prompt)")
            // Low-memory mode computes the same thing in two UNet calls.
            var lowMemory = settings
            lowMemory.lowMemory = true
            #expect(try sampler.generate(prompt: run.prompt, settings: lowMemory).maxAbsDifference(image) <= 1e-4)
        }
    }

    struct NegativeRun: Decodable {
        let weights: String, prompt: String, negative_prompt: String, seed: UInt64, steps: Int, guidance: Float
    }

    @Test("a negative prompt gives diffusers' image (negative_prompt), and an edit's source row is that generation",
          arguments: ["tiny-sd-negative", "tiny-sd2-negative"])
    func negativePrompt(_ name: String) throws {
        let run = try #require(try JSONDecoder().decode([String: NegativeRun].self, from: Data(contentsOf: Fixtures.url("negative-prompt.json")))[name])
        let model = try DiffusionModel(directory: Fixtures.url(run.weights))
        let sampler = Sampler(model: model)
        var settings = SamplingSettings(steps: run.steps, guidance: run.guidance, seed: run.seed, height: 64, width: 64,
                                        negativePrompt: run.negative_prompt)
        let image = try sampler.generate(prompt: run.prompt, settings: settings)
        let reference = try Fixtures.tensors("negative-prompt.safetensors").tensor("\(name).image")
        let quality = psnr(image, reference)
        print("[reference] negative prompt \(name): PSNR \(quality) dB, max abs error \(image.mapElements { min(max($0, -1), 1) }.maxAbsDifference(reference))")
        #expect(quality >= 40, "PSNR \(quality) dB")
        settings.negativePrompt = ""
        #expect(try sampler.generate(prompt: run.prompt, settings: settings).maxAbsDifference(image) > 0.05, "the negative prompt changed nothing")
        // Through the edit contract and the Prompt-to-Prompt editor: the source row is the plain generation.
        var spec = EditSpec(id: "n", source: run.prompt, targets: [run.prompt])
        (spec.negativePrompt, spec.steps, spec.guidance, spec.seed, spec.height, spec.width) = (run.negative_prompt, run.steps, Double(run.guidance), run.seed, 64, 64)
        spec.mode = .none
        let edited = try PromptToPromptEditor(model: model).runStageOne(spec).output
        let latents = try sampler.sample(prompts: [run.prompt], settings: SamplingSettings(steps: run.steps, guidance: run.guidance, seed: run.seed,
                                                                                            height: 64, width: 64, negativePrompt: run.negative_prompt))
        // A batch of two and a batch of one may be blocked differently by oneDNN's kernels for
        // some instruction sets (AVX2 here): float32 rounding, a few 1e-5 after every step.
        #expect(edited.slice(0..<1).maxAbsDifference(latents) <= 1e-4)
    }

    @Test("settings that do not fit the model are refused by name")
    func validation() throws {
        let sampler = Sampler(model: try DiffusionModel(directory: Fixtures.url("tiny-sd")))
        // A side past the bound is refused before anything is allocated for it.
        #expect(throws: EditError.self) { try sampler.generate(prompt: "x", settings: SamplingSettings(steps: 1, guidance: 7.5, seed: 1, height: 1 << 40, width: 64)) }
        let bad = SamplingSettings(steps: 10, guidance: 7.5, seed: 1, height: 60, width: 64)
        let error = #expect(throws: EditError.self) { try sampler.generate(prompt: "x", settings: bad) }
        #expect(error?.field == "height")
        #expect(throws: EditError.self) { try sampler.generate(prompt: "x", settings: SamplingSettings(steps: 0, guidance: 7.5, seed: 1, height: 64, width: 64)) }
        let long = String(repeating: "word ", count: 100)
        #expect(throws: EditError.self) { try sampler.generate(prompt: long, settings: SamplingSettings(steps: 1, guidance: 7.5, seed: 1, height: 64, width: 64)) }
    }
}
