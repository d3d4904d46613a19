import EditContract
@testable import Engine
import Foundation
import Testing

/// Few-step checkpoints against diffusers (reference/make_fixtures.py few-step): LCMScheduler's
/// plans and trajectories, the guidance-scale embedding of UNets with `time_cond_proj_dim`, a
/// tiny LCM-distilled model under diffusers' LatentConsistencyModelPipeline, and SD-Turbo's
/// one-row sampling at guidance <= 1; then Prompt-to-Prompt on the LCM model.
@Suite("LCM, embedded guidance and one-row guidance against diffusers")
struct FewStepSamplingTests {
    struct Case: Decodable {
        let steps: Int
        let timesteps: [Double]?
        let noise_seed: UInt64?
        let weights: String?
        let prompt: String?
        let seed: UInt64?
        let guidance: Float?
    }

    static let cases: [String: Case] = {
        try! JSONDecoder().decode([String: Case].self, from: Data(contentsOf: Fixtures.url("few-step/cases.json")))
    }()

    static func fixture() throws -> SafeTensorsFile { try Fixtures.tensors("few-step/few-step.safetensors") }

    @Test("plans and trajectories of diffusers-saved LCMScheduler configurations, noise between steps from a seeded generator",
          arguments: ["lcm-4", "lcm-1", "lcm-8-original-25", "lcm-6-v-clipped"])
    func trajectory(_ name: String) throws {
        let c = try #require(Self.cases[name])
        let config = try ModelConfig(file: Fixtures.url("few-step/\(name)/scheduler_config.json"))
        let scheduler = try NoiseScheduler(className: try config.string("_class_name"), config: config)
        #expect(scheduler.className == "LCMScheduler" && scheduler.supports(steps: c.steps))
        var run = scheduler.start(steps: c.steps)
        #expect(run.timesteps.map(Double.init) == (try #require(c.timesteps)), "\(name): timesteps \(run.timesteps)")
        #expect(run.initialNoiseSigma == 1 && run.drawsNoise && !run.drawsNoise(atStep: c.steps - 1))
        let fixture = try Self.fixture()
        let direction = try fixture.tensor("direction")
        func model(_ x: Tensor, _ t: Float) -> Tensor {
            let s = Float(sin(0.01 * Double(t)))
            return x.zipElements(direction) { 0.1 * $0 + s * $1 }
        }
        var generator = TorchGenerator(seed: try #require(c.noise_seed))
        var x = try fixture.tensor("start")
        for (i, t) in run.timesteps.enumerated() {
            let noise = run.drawsNoise(atStep: i) ? generator.normal(x.shape) : nil
            x = run.step(model(run.scaleInput(x, step: i), t), step: i, sample: x, noise: noise)
        }
        expectRelative(x, try fixture.tensor("\(name).final"), relative: 1e-5, "\(name) final")
    }

    @Test("LCM refuses more steps than its distillation schedule has, as diffusers does")
    func stepLimit() throws {
        let config = try ModelConfig(file: Fixtures.url("few-step/lcm-8-original-25/scheduler_config.json"))
        let scheduler = try NoiseScheduler(className: "LCMScheduler", config: config)
        #expect(scheduler.supports(steps: 25) && !scheduler.supports(steps: 26) && !scheduler.supports(steps: 0))
        #expect(scheduler.maximumSteps == 25)
    }

    @Test("the guidance-scale embedding equals diffusers' get_guidance_scale_embedding", arguments: [16, 15])
    func guidanceEmbedding(_ width: Int) throws {
        let ours = guidanceScaleEmbedding([7, 0.5, 0], width: width)
        let theirs = try Self.fixture().tensor("guidance-embedding-\(width)")
        #expect(ours.shape == theirs.shape)
        // Angles reach 7000 rad, where a float32 ulp of the angle is 5e-4.
        let error = ours.maxAbsDifference(theirs)
        print("[reference] guidance embedding, width \(width): max abs error \(error)")
        #expect(error <= 2e-3)
    }

    @Test("a UNet with time_cond_proj_dim reads cond_proj, and its output depends on the guidance embedding")
    func embeddedGuidanceUNet() throws {
        let model = try DiffusionModel(directory: Fixtures.url("tiny-lcm"))
        let width = try #require(model.unet.configuration.guidanceEmbeddingWidth)
        #expect(width == 16 && model.unet.timeEmbedding.conditionProjection != nil)
        var generator = TorchGenerator(seed: 3)
        let sample = generator.normal([1, 4, 8, 8]), context = generator.normal([1, 77, 32])
        let low = model.unet(sample, timesteps: [499], context: context, timestepCondition: guidanceScaleEmbedding([0.5], width: width))
        let high = model.unet(sample, timesteps: [499], context: context, timestepCondition: guidanceScaleEmbedding([7], width: width))
        #expect(low.maxAbsDifference(high) > 1e-3)
    }

    @Test("diffusers' images: LCM (embedded guidance, one row per prompt) and SD-Turbo's guidance 0 and 1 with Euler ancestral, trailing (>= 40 dB)",
          arguments: ["tiny-lcm-4", "tiny-lcm-2", "tiny-sd-turbo-1", "tiny-sd-turbo-4"])
    func pipeline(_ name: String) throws {
        let run = try #require(Self.cases[name])
        let model = try DiffusionModel(directory: Fixtures.url(try #require(run.weights)))
        var settings = SamplingSettings(steps: run.steps, guidance: try #require(run.guidance), seed: try #require(run.seed), height: 64, width: 64)
        // The scheduler folder the reference pipeline saved, as a choice of class and values.
        let config = try ModelConfig(file: Fixtures.url("few-step/\(name)/scheduler/scheduler_config.json"))
        settings.scheduler = SchedulerChoice(className: try config.string("_class_name"),
                                             overrides: config.values.filter { !$0.key.hasPrefix("_") })
        let image = try Sampler(model: model).generate(prompt: try #require(run.prompt), settings: settings)
        let reference = try Self.fixture().tensor("\(name).image")
        let quality = psnr(image, reference)
        print("[reference] few-step pipeline \(name): PSNR \(quality) dB, max abs error \(image.mapElements { min(max($0, -1), 1) }.maxAbsDifference(reference))")
        #expect(quality >= 40, "PSNR \(quality) dB")
    }

    @Test("Prompt-to-Prompt on the LCM model: the source row is the source's own generation, the target is steered by attention control alone")
    func editOnLCM() throws {
        let model = try DiffusionModel(directory: Fixtures.url("tiny-lcm"))
        func spec(crossReplace: Double, selfReplace: Double) throws -> EditSpec {
            var spec = EditSpec(id: "lcm", source: "a red circle on a blue background", targets: ["a red square on a blue background"])
            (spec.seed, spec.steps, spec.guidance, spec.height, spec.width, spec.superResolution) = (7, 4, 8, 64, 64, false)
            spec.crossReplace = CrossReplaceSchedule(StepRange(end: crossReplace))
            spec.selfReplace = StepRange(end: selfReplace)
            try spec.validate()
            return spec
        }
        let editor = PromptToPromptEditor(model: model)
        let edited = try editor.runStageOne(try spec(crossReplace: 0.8, selfReplace: 0.5)).output
        let uncontrolled = try editor.runStageOne(try spec(crossReplace: 0, selfReplace: 0)).output
        var settings = SamplingSettings(steps: 4, guidance: 8, seed: 7, height: 64, width: 64)
        settings.scheduler = nil
        let sampler = Sampler(model: model)
        let source = try sampler.sample(prompts: ["a red circle on a blue background"], settings: settings)
        let target = try sampler.sample(prompts: ["a red square on a blue background"], settings: settings)
        // One noise for both prompts at every step: with control off, each row is its prompt's own run.
        #expect(edited.slice(0..<1).maxAbsDifference(source) <= 1e-4)
        #expect(uncontrolled.slice(1..<2).maxAbsDifference(target) <= 1e-4)
        let steered = edited.slice(1..<2).maxAbsDifference(target)
        print("[few-step] LCM edit: target moved \(steered) by attention control (scale \(target.maxAbs))")
        #expect(steered > 1e-2, "attention control did not change the target")
    }
}
