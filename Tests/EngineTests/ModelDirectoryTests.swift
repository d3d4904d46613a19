@testable import Engine
import Foundation
import Testing

@Suite("diffusers model directories")
struct ModelDirectoryTests {
    func makeModel(_ root: URL, index: String = #"{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "DDIMScheduler"], "tokenizer": ["transformers", "CLIPTokenizer"], "safety_checker": [null, null]}"#) throws {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data(index.utf8).write(to: root.appendingPathComponent("model_index.json"))
    }

    func write(_ text: String, _ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    @Test("reads the index, configs, preferred weights and tokenizer files")
    func complete() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        try makeModel(root)
        try write(#"{"in_channels": 4, "block_out_channels": [32, 64], "attention_head_dim": 8, "norm_eps": 1e-05}"#, root.appendingPathComponent("unet/config.json"))
        // Both a full-precision and an fp16 file: full precision is preferred.
        try SafeTensorsWriter.write(["w": Tensor.zeros([1])], to: root.appendingPathComponent("unet/diffusion_pytorch_model.safetensors"))
        try SafeTensorsWriter.write(["w": Tensor.zeros([1])], storage: .float16, to: root.appendingPathComponent("unet/diffusion_pytorch_model.fp16.safetensors"))
        try write(#"{"num_train_timesteps": 1000, "beta_schedule": "scaled_linear"}"#, root.appendingPathComponent("scheduler/scheduler_config.json"))
        try write("{}", root.appendingPathComponent("tokenizer/vocab.json"))
        try write("#version: 0.2\n", root.appendingPathComponent("tokenizer/merges.txt"))

        let model = try ModelDirectory(url: root)
        #expect(model.pipelineClass == "StableDiffusionPipeline")
        #expect(Set(model.components.keys) == ["unet", "scheduler", "tokenizer"])  // null entries skipped
        let unet = try model.component("unet", supportedClasses: ["UNet2DConditionModel"])
        #expect(unet.weightsURL?.lastPathComponent == "diffusion_pytorch_model.safetensors")
        #expect(try unet.config.int("in_channels") == 4)
        #expect(try unet.config.ints("block_out_channels") == [32, 64])
        #expect(try unet.config.intOrInts("attention_head_dim", count: 2) == [8, 8])
        #expect(try unet.config.double("norm_eps") == 1e-5)
        #expect(try unet.config.int("layers_per_block", default: 2) == 2)
        #expect(throws: ModelDirectoryError.self) { try unet.config.string("in_channels") }
        let scheduler = try model.component("scheduler")
        #expect(scheduler.weightsURL == nil)
        #expect(try scheduler.config.string("beta_schedule") == "scaled_linear")
        if case .vocabularyAndMerges = try model.tokenizerFiles().source {} else { Issue.record("vocab.json + merges.txt not chosen") }

        // Only an fp16 variant: it is chosen.
        try FileManager.default.removeItem(at: root.appendingPathComponent("unet/diffusion_pytorch_model.safetensors"))
        #expect(try model.component("unet").weightsURL?.lastPathComponent == "diffusion_pytorch_model.fp16.safetensors")
    }

    @Test("tokenizer.json alone gives the ids of vocab.json + merges.txt; special tokens may be only in added_tokens")
    func tokenizerJSON() throws {
        let fixture = Fixtures.url("tiny-sd/tokenizer")
        let reference = try CLIPTokenizer(files: TokenizerFiles(directory: fixture))
        guard case .vocabularyAndMerges = try TokenizerFiles(directory: fixture).source else {
            Issue.record("vocab.json + merges.txt are preferred when present")
            return
        }
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.appendingPathComponent("tokenizer.json"))) as? [String: Any] ?? [:]
        // As some exports do: the special tokens listed in added_tokens only.
        var model = json["model"] as? [String: Any] ?? [:]
        var vocabulary = model["vocab"] as? [String: Any] ?? [:]
        #expect(vocabulary.removeValue(forKey: "<|startoftext|>") != nil && vocabulary.removeValue(forKey: "<|endoftext|>") != nil)
        model["vocab"] = vocabulary
        json["model"] = model
        try JSONSerialization.data(withJSONObject: json).write(to: root.appendingPathComponent("tokenizer.json"))
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.copyItem(at: fixture.appendingPathComponent(name), to: root.appendingPathComponent(name))
        }
        let files = try TokenizerFiles(directory: root)
        guard case .tokenizerJSON = files.source else { Issue.record("tokenizer.json was not chosen"); return }
        let tokenizer = try CLIPTokenizer(files: files)
        #expect((tokenizer.startToken, tokenizer.endToken, tokenizer.padToken) == (reference.startToken, reference.endToken, reference.padToken))
        for c in TokenizerReferenceTests.file.cases {
            #expect(try tokenizer.tokenize(c.text, truncate: true) == (try reference.tokenize(c.text, truncate: true)), "\(c.text.debugDescription)")
        }

        // A malformed merge is named.
        model["merges"] = ["a b", "c d e"]
        json["model"] = model
        try JSONSerialization.data(withJSONObject: json).write(to: root.appendingPathComponent("tokenizer.json"))
        let error = #expect(throws: ModelDirectoryError.self) { try CLIPTokenizer(files: TokenizerFiles(directory: root)) }
        #expect(error?.description.contains("model.merges[1]") == true, "\(String(describing: error))")
    }

    @Test("missing and unsupported parts are named with a fix")
    func problems() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }

        let notModel = #expect(throws: ModelDirectoryError.self) { try ModelDirectory(url: root) }
        #expect(notModel?.path.hasSuffix("model_index.json") == true)
        #expect(throws: ModelDirectoryError.self) { try ModelDirectory(url: root.appendingPathComponent("nowhere")) }

        try makeModel(root)
        let model = try ModelDirectory(url: root)
        let missingFolder = #expect(throws: ModelDirectoryError.self) { try model.component("unet") }
        #expect(missingFolder?.path.hasSuffix("unet") == true)
        let unlisted = #expect(throws: ModelDirectoryError.self) { try model.component("vae") }
        #expect(unlisted?.problem.contains("vae") == true)
        let unsupported = #expect(throws: ModelDirectoryError.self) { try model.component("unet", supportedClasses: ["UNet2DModel"]) }
        #expect(unsupported?.problem.contains("UNet2DConditionModel") == true)

        try FileManager.default.createDirectory(at: root.appendingPathComponent("unet"), withIntermediateDirectories: true)
        let noConfig = #expect(throws: ModelDirectoryError.self) { try model.component("unet") }
        #expect(noConfig?.problem.contains("config.json") == true)

        try write("{}", root.appendingPathComponent("unet/config.json"))
        try write("pickle", root.appendingPathComponent("unet/diffusion_pytorch_model.bin"))
        let pickle = #expect(throws: ModelDirectoryError.self) { try model.component("unet").weights() }
        #expect(pickle?.path.hasSuffix(".bin") == true && pickle?.fix.contains("safetensors") == true)

        try write("[1, 2]", root.appendingPathComponent("unet/config.json"))
        #expect(throws: ModelDirectoryError.self) { try model.component("unet") }

        let noTokenizer = #expect(throws: ModelDirectoryError.self) { try model.tokenizerFiles() }
        #expect(noTokenizer?.fix.contains("tokenizer") == true)
    }
}
