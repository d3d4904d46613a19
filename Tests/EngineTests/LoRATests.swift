import EditContract
@testable import Engine
import Foundation
import Testing

/// LoRA files fused at load against diffusers' load_lora_weights + fuse_lora
/// (reference/make_fixtures.py lora): the same random updates of tiny-sd's UNet (attention,
/// feed-forward, projections, ResNet convolutions) and text encoder in the diffusers/PEFT layout
/// (alpha from the adapter metadata) and in kohya's (alpha keys).
@Suite("LoRA files in both layouts, fused at load, against diffusers")
struct LoRATests {
    struct Run: Decodable {
        let file: String
        let scale: Float
        let prompt: String
        let seed: UInt64
        let steps: Int
        let guidance: Float
    }

    static let runs: [String: Run] = {
        try! JSONDecoder().decode([String: Run].self, from: Data(contentsOf: Fixtures.url("lora/runs.json")))
    }()

    func settings(_ run: Run) -> SamplingSettings {
        SamplingSettings(steps: run.steps, guidance: run.guidance, seed: run.seed, height: 64, width: 64)
    }

    @Test("diffusers' image with the LoRA fused at its scale (>= 40 dB), and not the plain model's", arguments: ["peft", "kohya"])
    func fused(_ name: String) throws {
        let run = try #require(Self.runs[name])
        let choice = LoRAChoice(path: Fixtures.url("lora/\(run.file)").path, scale: run.scale)
        let model = try DiffusionModel(directory: Fixtures.url("tiny-sd"), lora: [choice])
        let image = try Sampler(model: model).generate(prompt: run.prompt, settings: settings(run))
        let images = try Fixtures.tensors("lora/images.safetensors")
        let quality = psnr(image, try images.tensor("\(name).image"))
        let plain = try Sampler(model: DiffusionModel(directory: Fixtures.url("tiny-sd"))).generate(prompt: run.prompt, settings: settings(run))
        print("[reference] LoRA \(name) at scale \(run.scale): PSNR \(quality) dB against diffusers; the plain model's image \(psnr(plain, image)) dB from it")
        #expect(quality >= 40, "PSNR \(quality) dB")
        #expect(psnr(plain, image) < 30, "the LoRA changed nothing")
        // A LoRA is part of the model's identity (provenance, worker routing).
        #expect(model.identifier != (try DiffusionModel(directory: Fixtures.url("tiny-sd")).identifier))
    }

    @Test("PATH:SCALE parsing; files or keys that do not fit are refused by name")
    func refusals() throws {
        #expect(try LoRAChoice(parsing: "a/b.safetensors:0.5") == LoRAChoice(path: "a/b.safetensors", scale: 0.5))
        #expect(try LoRAChoice(parsing: "c:/x.safetensors") == LoRAChoice(path: "c:/x.safetensors", scale: 1))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func refusal(_ tensors: [String: Tensor]) throws -> String {
            let file = directory.appendingPathComponent("\(UUID().uuidString).safetensors")
            try SafeTensorsWriter.write(tensors, to: file)
            do {
                _ = try DiffusionModel(directory: Fixtures.url("tiny-sd"), lora: [LoRAChoice(path: file.path)])
                return ""
            } catch let error as ModelDirectoryError {
                return "\(error.problem) | \(error.fix)"
            }
        }
        let down = Tensor.zeros([2, 32]), up = Tensor.zeros([32, 2])
        let q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
        // A module the model does not have (kohya SDXL names in the original layout, say).
        #expect(try refusal(["lora_unet_input_blocks_4_1_proj_in.lora_down.weight": down, "lora_unet_input_blocks_4_1_proj_in.lora_up.weight": up])
            .contains("which this model does not have"))
        // Shapes that do not fit the weight.
        #expect(try refusal(["unet.\(q).lora_A.weight": Tensor.zeros([2, 31]), "unet.\(q).lora_B.weight": up]).contains("do not update"))
        // A half missing, and a key of no layout read here (DoRA's magnitudes).
        #expect(try refusal(["unet.\(q).lora_A.weight": down]).contains("missing"))
        #expect(try refusal(["unet.\(q).lora_magnitude_vector": Tensor.zeros([32])]).contains("not a key of a LoRA layout"))
        #expect(try refusal(["unet.\(q).lora_A.weight": down, "unet.\(q).lora_B.weight": up]) == "", "a fitting update was refused")
    }
}
