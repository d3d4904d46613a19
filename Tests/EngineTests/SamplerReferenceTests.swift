import EditContract
@testable import Engine
import Foundation
import Testing

/// DPM-Solver++ and Euler against diffusers: plans and trajectories of configurations saved by
/// diffusers (reference/make_fixtures.py samplers), whole pipelines, and Prompt-to-Prompt edits
/// against the independent reference under these schedulers.
@Suite("DPM-Solver++ and Euler against diffusers")
struct SamplerReferenceTests {
    struct Case: Decodable { let steps: Int; let timesteps: [Double]; let init_noise_sigma: Double }

    static let cases: [String: Case] = {
        try! JSONDecoder().decode([String: Case].self, from: Data(contentsOf: Fixtures.url("samplers/cases.json")))
    }()

    @Test("plans (timesteps, sigmas, initial noise) and trajectories of every saved configuration",
          arguments: cases.keys.sorted())
    func trajectory(_ name: String) throws {
        let c = try #require(Self.cases[name])
        let config = try ModelConfig(file: Fixtures.url("samplers/\(name)/scheduler_config.json"))
        let scheduler = try NoiseScheduler(className: try config.string("_class_name"), config: config)
        #expect(scheduler.supports(steps: c.steps))
        var run = scheduler.start(steps: c.steps)
        let fixture = try Fixtures.tensors("samplers/trajectories.safetensors")
        // Timesteps: integers exactly; Euler's interpolated ones to float32 rounding.
        #expect(run.timesteps.count == c.timesteps.count)
        for (ours, theirs) in zip(run.timesteps, c.timesteps) {
            #expect(abs(Double(ours) - theirs) <= 1e-3 * max(1, abs(theirs)), "\(name): timestep \(ours) vs \(theirs)")
        }
        #expect(abs(Double(run.initialNoiseSigma) - c.init_noise_sigma) <= 1e-6 * c.init_noise_sigma)
        let direction = try fixture.tensor("direction")
        func model(_ x: Tensor, _ t: Float) -> Tensor {
            let s = Float(sin(0.01 * Double(t)))
            return x.zipElements(direction) { 0.1 * $0 + s * $1 }
        }
        let start = try fixture.tensor("start")
        var x = start.mapElements { $0 * run.initialNoiseSigma }
        for (i, t) in run.timesteps.enumerated() {
            x = run.step(model(run.scaleInput(x, step: i), t), step: i, sample: x)
            if i == c.steps / 2 { expectRelative(x, try fixture.tensor("\(name).middle"), relative: 1e-5, "\(name) middle") }
        }
        expectRelative(x, try fixture.tensor("\(name).final"), relative: 1e-5, "\(name) final")
    }

    @Test("diffusers-saved scheduler folders: -Infinity is read; options this engine does not run are refused by name")
    func configurations() throws {
        let url = Fixtures.url("samplers/dpm2m-karras/scheduler_config.json")
        let config = try ModelConfig(file: url)
        #expect(config.values["lambda_min_clipped"]?.doubleValue == -.infinity)
        var values = config.values
        values["algorithm_type"] = .string("sde-dpmsolver++")
        let sde = #expect(throws: ModelDirectoryError.self) { try NoiseScheduler(className: "DPMSolverMultistepScheduler", config: ModelConfig(values: values, file: url)) }
        #expect(sde?.problem.contains("algorithm_type") == true)
        values = config.values
        values["use_lu_lambdas"] = .bool(true)
        #expect(throws: ModelDirectoryError.self) { try NoiseScheduler(className: "DPMSolverMultistepScheduler", config: ModelConfig(values: values, file: url)) }
        #expect(throws: ModelDirectoryError.self) { try NoiseScheduler(className: "PNDMScheduler", config: config) }
        // Choices: short names, class names, overrides, and what they refuse.
        #expect(try SchedulerChoice(parsing: "dpm++-karras") == SchedulerChoice(className: "DPMSolverMultistepScheduler", overrides: ["use_karras_sigmas": .bool(true)]))
        #expect(try SchedulerChoice(parsing: "DPMSolverMultistepScheduler,solver_order=3").overrides["solver_order"] == .int(3))
        #expect(try SchedulerChoice(json: .object(["_class_name": .string("euler"), "timestep_spacing": .string("trailing")]))
                == SchedulerChoice(className: "EulerDiscreteScheduler", overrides: ["timestep_spacing": .string("trailing")]))
        let unknown = #expect(throws: EditError.self) { try SchedulerChoice(parsing: "lms") }
        #expect(unknown?.field == "scheduler")
        #expect(throws: EditError.self) { try SchedulerChoice(parsing: "euler,karras") }
        let badOrder = #expect(throws: EditError.self) { try SchedulerChoice(parsing: "dpm++,solver_order=5").scheduler(from: config) }
        #expect(badOrder?.problem.contains("solver_order") == true)
    }

    struct PipelineRun: Decodable { let weights: String; let prompt: String; let seed: UInt64; let steps: Int; let guidance: Float }

    /// A copy of a fixture model with the scheduler folder and model_index.json a diffusers
    /// pipeline saved after its scheduler was swapped.
    static func model(_ name: String, weights: String) throws -> (DiffusionModel, URL) {
        let directory = try temporaryDirectory(name)
        let copy = directory.appendingPathComponent(weights)
        try FileManager.default.copyItem(at: Fixtures.url(weights), to: copy)
        let saved = Fixtures.url("sampler-pipelines/\(name)")
        for file in ["model_index.json", "scheduler/scheduler_config.json"] {
            try FileManager.default.removeItem(at: copy.appendingPathComponent(file))
            try FileManager.default.copyItem(at: saved.appendingPathComponent(file), to: copy.appendingPathComponent(file))
        }
        return (try DiffusionModel(directory: copy), directory)
    }

    @Test("a pipeline saved with DPM-Solver++ or Euler generates diffusers' image (>= 40 dB)",
          arguments: ["tiny-sd-dpm2m-karras", "tiny-sd-dpm2m", "tiny-sd-euler", "tiny-sd-euler-karras", "tiny-sd2-dpm3m-trailing", "tiny-sd2-euler-karras"])
    func pipeline(_ name: String) throws {
        let runs = try JSONDecoder().decode([String: PipelineRun].self, from: Data(contentsOf: Fixtures.url("sampler-pipelines/runs.json")))
        let run = try #require(runs[name])
        let (model, directory) = try Self.model(name, weights: run.weights)
        defer { try? FileManager.default.removeItem(at: directory) }
        let className = try ModelConfig(file: Fixtures.url("sampler-pipelines/\(name)/scheduler/scheduler_config.json")).string("_class_name")
        #expect(model.scheduler.className == className && model.schedulerNote == nil)
        let settings = SamplingSettings(steps: run.steps, guidance: run.guidance, seed: run.seed, height: 64, width: 64)
        let image = try Sampler(model: model).generate(prompt: run.prompt, settings: settings)
        let reference = try Fixtures.tensors("sampler-pipelines/images.safetensors").tensor("\(name).image")
        let quality = psnr(image, reference)
        print("[reference] pipeline \(name): PSNR \(quality) dB, max abs error \(image.mapElements { min(max($0, -1), 1) }.maxAbsDifference(reference))")
        #expect(quality >= 40, "PSNR \(quality) dB")
    }
}
