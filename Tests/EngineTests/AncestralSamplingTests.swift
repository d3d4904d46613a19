import EditContract
@testable import Engine
import Foundation
import Testing

/// Euler ancestral sampling against diffusers (reference/make_fixtures.py ancestral), and the
/// InstructPix2Pix recipe's sampling against its re-implementation on diffusers
/// (reference/ip2p_reference.py).
@Suite("Euler ancestral and the InstructPix2Pix recipe against their references")
struct AncestralSamplingTests {
    struct Case: Decodable {
        let steps: Int?
        let timesteps: [Double]?
        let init_noise_sigma: Double?
        let noise_seed: UInt64?
        let weights: String?
        let prompt: String?
        let seed: UInt64?
        let guidance: Float?
    }

    static let cases: [String: Case] = {
        try! JSONDecoder().decode([String: Case].self, from: Data(contentsOf: Fixtures.url("samplers-ancestral/cases.json")))
    }()

    @Test("plans and trajectories of diffusers-saved EulerAncestralDiscreteScheduler configurations, noise from a seeded generator",
          arguments: ["euler-a-linspace", "euler-a-leading", "euler-a-trailing-v"])
    func trajectory(_ name: String) throws {
        let c = try #require(Self.cases[name])
        let (steps, timesteps, noiseSeed) = (try #require(c.steps), try #require(c.timesteps), try #require(c.noise_seed))
        let config = try ModelConfig(file: Fixtures.url("samplers-ancestral/\(name)/scheduler_config.json"))
        let scheduler = try NoiseScheduler(className: try config.string("_class_name"), config: config)
        #expect(scheduler.className == "EulerAncestralDiscreteScheduler" && scheduler.supports(steps: steps))
        var run = scheduler.start(steps: steps)
        #expect(run.drawsNoise && run.timesteps.count == timesteps.count)
        for (ours, theirs) in zip(run.timesteps, timesteps) {
            #expect(abs(Double(ours) - theirs) <= 1e-3 * max(1, abs(theirs)), "\(name): timestep \(ours) vs \(theirs)")
        }
        #expect(abs(Double(run.initialNoiseSigma) - (c.init_noise_sigma ?? 0)) <= 1e-6 * (c.init_noise_sigma ?? 1))
        let fixture = try Fixtures.tensors("samplers-ancestral/ancestral.safetensors")
        let direction = try fixture.tensor("direction")
        func model(_ x: Tensor, _ t: Float) -> Tensor {
            let s = Float(sin(0.01 * Double(t)))
            return x.zipElements(direction) { 0.1 * $0 + s * $1 }
        }
        var generator = TorchGenerator(seed: noiseSeed)
        var x = try fixture.tensor("start").mapElements { $0 * run.initialNoiseSigma }
        for (i, t) in run.timesteps.enumerated() {
            x = run.step(model(run.scaleInput(x, step: i), t), step: i, sample: x, noise: generator.normal(x.shape))
        }
        expectRelative(x, try fixture.tensor("\(name).final"), relative: 1e-5, "\(name) final")
    }

    @Test("euler-a generates diffusers' image from its generator (>= 40 dB)", arguments: ["tiny-sd-euler-a", "tiny-sd2-euler-a"])
    func pipeline(_ name: String) throws {
        let run = try #require(Self.cases[name])
        let model = try DiffusionModel(directory: Fixtures.url(try #require(run.weights)))
        var settings = SamplingSettings(steps: try #require(run.steps), guidance: try #require(run.guidance), seed: try #require(run.seed),
                                        height: 64, width: 64)
        settings.scheduler = try SchedulerChoice(parsing: "euler-a")
        let image = try Sampler(model: model).generate(prompt: try #require(run.prompt), settings: settings)
        let reference = try Fixtures.tensors("samplers-ancestral/ancestral.safetensors").tensor("\(name).image")
        let quality = psnr(image, reference)
        print("[reference] euler-a pipeline \(name): PSNR \(quality) dB, max abs error \(image.mapElements { min(max($0, -1), 1) }.maxAbsDifference(reference))")
        #expect(quality >= 40, "PSNR \(quality) dB")
    }

    struct RecipeCase: Decodable {
        let weights: String
        let prompts: [String]
        let seed: UInt64
        let steps: Int
        let guidance: Double
        let threshold: Double
        let shared_noise: Bool
    }

    static let recipeCases: [String: RecipeCase] = {
        try! JSONDecoder().decode([String: RecipeCase].self, from: Data(contentsOf: Fixtures.url("ip2p-recipe.json")))
    }()

    @Test("the recipe's sampling (shared ancestral noise, self-attention shared in every layer and both halves for i / (T - 1) < p) equals its reference",
          arguments: ["shared-p35", "shared-p90-refine", "shared-p0", "independent"])
    func recipe(_ name: String) throws {
        let c = try #require(Self.recipeCases[name])
        let model = try DiffusionModel(directory: Fixtures.url(c.weights))
        var spec = EditSpec(id: name, source: c.prompts[0], targets: Array(c.prompts.dropFirst()))
        (spec.seed, spec.steps, spec.guidance, spec.height, spec.width, spec.superResolution) = (c.seed, c.steps, c.guidance, 64, 64, false)
        spec.scheduler = try SchedulerChoice(parsing: "euler-a")
        spec.mode = .refine
        spec.crossReplace = CrossReplaceSchedule(StepRange(end: 0))
        spec.selfReplace = StepRange(end: c.threshold)
        spec.selfReplaceVariant = .instructPix2Pix
        spec.ancestralNoise = c.shared_noise ? .shared : .independent
        try spec.validate()
        let latents = try PromptToPromptEditor(model: model).runStageOne(spec).output
        let reference = try Fixtures.tensors("ip2p-recipe.safetensors").tensor("\(name).latents")
        let error = latents.maxAbsDifference(reference)
        print("[reference] InstructPix2Pix recipe \(name): max abs error \(error) (latent scale \(reference.maxAbs))")
        #expect(error <= 1e-4 * max(1, reference.maxAbs), "\(name): \(error)")
        // Shared noise: the source row is the source prompt's own generation.
        if c.shared_noise {
            var settings = SamplingSettings(steps: c.steps, guidance: Float(c.guidance), seed: c.seed, height: 64, width: 64)
            settings.scheduler = spec.scheduler
            let alone = try Sampler(model: model).sample(prompts: [c.prompts[0]], settings: settings)
            #expect(latents.slice(0..<1).maxAbsDifference(alone) <= 1e-4, "the source row is not the prompt's own generation")
        }
    }

    @Test("the recipe's step rule differs from Prompt-to-Prompt's where the fractions say so")
    func stepRules() {
        // T = 10, p = 0.35: i / 9 < 0.35 for i <= 3 (4 steps); int(0.35 * 10) = 3 steps.
        #expect(StepRange(end: 0.35).sharingSteps(of: 10) == 0..<4 && StepRange(end: 0.35).steps(of: 10) == 0..<3)
        #expect(StepRange(end: 0.9).sharingSteps(of: 100) == 0..<90 && StepRange(end: 0).sharingSteps(of: 10).isEmpty)
        // The last step (i / (T - 1) = 1) is never shared, as in the recipe; a single step counts as 0.
        #expect(StepRange(start: 0.5, end: 1).sharingSteps(of: 11) == 5..<10 && StepRange(end: 1).sharingSteps(of: 1) == 0..<1)
    }
}
