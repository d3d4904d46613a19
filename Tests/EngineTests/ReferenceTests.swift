import EditContract
@testable import Engine
import Foundation
import Testing

/// The committed reference fixtures (reference/make_fixtures.py).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/reference")

    static func url(_ name: String) -> URL { root.appendingPathComponent(name) }

    static func tensors(_ name: String) throws -> SafeTensorsFile { try SafeTensorsFile(url: url(name)) }

    static func component(_ name: String) throws -> ModelComponent { try ModelComponent(directory: url(name)) }

    static let sdTokenizer: CLIPTokenizer = {
        try! CLIPTokenizer(files: TokenizerFiles(directory: url("sd-tokenizer")))
    }()
}

/// Expects `actual` within `relative` x (the reference's largest magnitude) of `expected`.
func expectRelative(_ actual: Tensor, _ expected: Tensor, relative: Float, _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape) vs \(expected.shape)", sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    let error = actual.maxAbsDifference(expected), scale = max(expected.maxAbs, 1e-6)
    #expect(error <= relative * scale, "\(what): max abs error \(error) at scale \(scale) (\(error / scale) relative)",
            sourceLocation: sourceLocation)
    print("[reference] \(what): max abs error \(error), scale \(scale)")
}

@Suite("CLIP tokenizer against transformers")
struct TokenizerReferenceTests {
    struct Case: Decodable { let text: String; let ids: [Int]; let untruncated_length: Int }
    struct File: Decodable { let cases: [Case]; let single_token_decoding: [String: String] }

    static let file: File = {
        let data = try! Data(contentsOf: Fixtures.url("tokenizer-cases.json"))
        return try! JSONDecoder().decode(File.self, from: data)
    }()

    @Test("ids equal transformers' CLIPTokenizer on every reference prompt")
    func ids() throws {
        let tokenizer = Fixtures.sdTokenizer
        var mismatches: [String] = []
        for c in Self.file.cases {
            if c.untruncated_length > 77 {
                #expect(throws: EditError.self, "\(c.text) should be refused") { try tokenizer.tokenize(c.text) }
            }
            let ids = try tokenizer.tokenize(c.text, truncate: true)
            if ids != c.ids { mismatches.append("\(c.text.debugDescription): \(ids.prefix(20)) vs \(c.ids.prefix(20))") }
        }
        #expect(Self.file.cases.count >= 200)
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(Self.file.cases.count) prompts differ:\n\(mismatches.prefix(10).joined(separator: "\n"))")
    }

    @Test("single tokens decode as tokenizer.decode([id])")
    func decoding() {
        let tokenizer = Fixtures.sdTokenizer
        for (id, text) in Self.file.single_token_decoding {
            #expect(tokenizer.decode(token: Int(id)!) == text, "token \(id)")
        }
    }

    @Test("the token vectors of the Prompt-to-Prompt spec, section 7")
    func specVectors() throws {
        let tokenizer = Fixtures.sdTokenizer
        func words(_ prompt: String) -> [String] {
            tokenizer.encode(prompt).map { tokenizer.decode(token: $0) }
        }
        #expect(tokenizer.startToken == 49406 && tokenizer.endToken == 49407)
        #expect(words("A painting of a squirrel eating a burger") == ["a", "painting", "of", "a", "squirrel", "eating", "a", "burger"])
        #expect(words("A painting of a squirrel eating a lasagne").suffix(2) == ["lasag", "ne"])
        #expect(words("A neoclassical painting of a squirrel eating a burger").prefix(3) == ["a", "neo", "classical"])
        #expect(words("pea soup with croutons") == ["pea", "soup", "with", "cr", "out", "ons"])
        #expect(words("fried potatos") == ["fried", "potat", "os"])
        let ids = try tokenizer.tokenize("pea soup with croutons")
        #expect(ids[7] == 49407 && ids[8] == 49407 && ids.count == 77)
    }
}

@Suite("Stable Diffusion components against diffusers and transformers")
struct ModelReferenceTests {
    @Test("CLIP text encoder, quick GELU and GELU", arguments: ["text-encoder-quick-gelu", "text-encoder-gelu"])
    func textEncoder(_ name: String) throws {
        let model = try CLIPTextModel(component: Fixtures.component(name))
        let io = try Fixtures.tensors(name + "/io.safetensors")
        let ids = try io.tensor("input_ids")
        let rows = (0..<ids.shape[0]).map { b in (0..<ids.shape[1]).map { Int(ids[b, $0]) } }
        let output = model(rows)
        let expected = try io.tensor("last_hidden_state")
        #expect(output.maxAbsDifference(expected) <= 1e-4, "max abs error \(output.maxAbsDifference(expected))")
        print("[reference] \(name): max abs error \(output.maxAbsDifference(expected))")
    }

    @Test("CLIPTextModelWithProjection (SDXL's second encoder): penultimate hidden state, pooled projection at the first end of text")
    func textEncoderWithProjection() throws {
        let name = "text-encoder-projection"
        let model = try CLIPTextModel(component: Fixtures.component(name))
        #expect(model.hasProjection)
        let io = try Fixtures.tensors(name + "/io.safetensors")
        let ids = try io.tensor("input_ids")
        let encoding = model.encode((0..<ids.shape[0]).map { b in (0..<ids.shape[1]).map { Int(ids[b, $0]) } })
        for (output, key) in [(encoding.lastHiddenState, "last_hidden_state"), (encoding.penultimateHiddenState, "penultimate_hidden_state")] {
            let error = output.maxAbsDifference(try io.tensor(key))
            print("[reference] \(name) \(key): max abs error \(error)")
            #expect(error <= 1e-4, "\(key): max abs error \(error)")
        }
        let pooled = try #require(encoding.textEmbeds)
        let error = pooled.maxAbsDifference(try io.tensor("text_embeds"))
        print("[reference] \(name) text_embeds: max abs error \(error)")
        #expect(error <= 1e-4, "text_embeds: max abs error \(error)")
        // A plain CLIPTextModel has no projection to give.
        #expect(try CLIPTextModel(component: Fixtures.component("text-encoder-gelu")).encode([[998, 5, 999]]).textEmbeds == nil)
    }

    @Test("CLIP text encoder saved as SD 1.x checkpoints are: keys under text_model., an int64 position_ids to ignore")
    func textEncoderLegacyLayout() throws {
        let name = "text-encoder-gelu"
        let source = try Fixtures.tensors(name + "/model.safetensors")
        // Assemble the file by hand: F32 weights renamed, plus I64 position_ids [1, 77].
        var header: [String: Any] = [:]
        var data = Data()
        for tensorName in source.tensorNames.sorted() {
            let tensor = try source.tensor(tensorName)
            let bytes = tensor.scalars.withUnsafeBytes { Data($0) }
            header["text_model." + tensorName] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [data.count, data.count + bytes.count]]
            data.append(bytes)
        }
        let positions = (0..<77).map { Int64($0) }.withUnsafeBytes { Data($0) }
        header["text_model.embeddings.position_ids"] = ["dtype": "I64", "shape": [1, 77], "data_offsets": [data.count, data.count + positions.count]]
        data.append(positions)
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(data)
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(at: Fixtures.url(name + "/config.json"), to: directory.appendingPathComponent("config.json"))
        try file.write(to: directory.appendingPathComponent("model.safetensors"))

        let model = try CLIPTextModel(component: try ModelComponent(directory: directory))
        let io = try Fixtures.tensors(name + "/io.safetensors")
        let ids = try io.tensor("input_ids")
        let output = model((0..<ids.shape[0]).map { b in (0..<ids.shape[1]).map { Int(ids[b, $0]) } })
        let error = output.maxAbsDifference(try io.tensor("last_hidden_state"))
        #expect(error <= 1e-4, "max abs error \(error)")
    }

    @Test("UNet: SD 1.x-like, SD 2.x-like (linear projections), super-resolution-like and SDXL-like (text_time added embeddings, two transformer layers per block), even and odd sizes",
          arguments: ["unet-sd1", "unet-sd2", "unet-sr", "unet-sdxl"])
    func unet(_ name: String) throws {
        let model = try UNet2DConditionModel(component: Fixtures.component(name))
        let io = try Fixtures.tensors(name + "/io.safetensors")
        #expect((model.configuration.textTimeEmbedding != nil) == (name == "unet-sdxl"))
        for tag in ["even", "odd"] {
            let labels = io.entries["\(tag).class_labels"] != nil ? try io.tensor("\(tag).class_labels").scalars.map { Int($0) } : nil
            let added = io.entries["\(tag).text_embeds"] != nil
                ? UNetAddedConditions(textEmbeds: try io.tensor("\(tag).text_embeds"), timeIDs: try io.tensor("\(tag).time_ids")) : nil
            let output = model(try io.tensor("\(tag).sample"), timesteps: try io.tensor("\(tag).timestep").scalars,
                               context: try io.tensor("\(tag).context"), classLabels: labels, added: added)
            expectRelative(output, try io.tensor("\(tag).output"), relative: 2e-4, "\(name) \(tag)")
        }
    }

    @Test("VAE encode and decode; legacy attention names load the same")
    func autoencoder() throws {
        let io = try Fixtures.tensors("vae/io.safetensors")
        for name in ["vae", "vae-legacy"] {
            let model = try AutoencoderKL(component: Fixtures.component(name))
            let (mean, deviation) = model.encode(try io.tensor("image"))
            expectRelative(mean, try io.tensor("mean"), relative: 2e-4, "\(name) encode mean")
            expectRelative(deviation, try io.tensor("std"), relative: 2e-4, "\(name) encode std")
            expectRelative(model.decode(try io.tensor("latents")), try io.tensor("decoded"), relative: 2e-4, "\(name) decode")
        }
    }
}

@Suite("DDIM and noise against diffusers and torch")
struct SamplingReferenceTests {
    struct Timesteps: Decodable { let timesteps: [Int] }

    @Test("DDIM: schedules, spacings, prediction types, 50-step trajectories and inversion",
          arguments: ["sd15", "linear-trailing-v", "cosine-linspace-sample-clip", "sd2-v", "scaled-trailing-eps"])
    func ddim(_ name: String) throws {
        let scheduler = try DDIMScheduler(ModelConfig(file: Fixtures.url("ddim/\(name).json")))
        let meta = try JSONDecoder().decode([String: Timesteps].self, from: Data(contentsOf: Fixtures.url("ddim/timesteps.json")))
        let trajectories = try Fixtures.tensors("ddim/trajectories.safetensors")
        let timesteps = scheduler.timesteps(steps: 50)
        #expect(timesteps == meta[name]?.timesteps)
        let alphas = try trajectories.tensor("\(name).alphas_cumprod")
        #expect(Tensor(shape: alphas.shape, values: scheduler.alphasCumulative).maxAbsDifference(alphas) <= 1e-6)

        let direction = try trajectories.tensor("direction")
        func model(_ x: Tensor, _ t: Int) -> Tensor {
            let s = Float(sin(0.01 * Double(t)))
            return x.zipElements(direction) { 0.1 * $0 + s * $1 }
        }
        var x = try trajectories.tensor("start")
        for (i, t) in timesteps.enumerated() {
            x = scheduler.step(model(x, t), timestep: t, sample: x, steps: 50)
            if i == 24 { expectRelative(x, try trajectories.tensor("\(name).step25"), relative: 1e-4, "\(name) step 25") }
        }
        #expect(x.maxAbsDifference(try trajectories.tensor("\(name).final")) <= 1e-4)
        print("[reference] ddim \(name): final max abs error \(x.maxAbsDifference(try trajectories.tensor("\(name).final")))")

        if trajectories.entries["\(name).inverted"] != nil {
            var y = try trajectories.tensor("start")
            for t in timesteps.reversed() { y = scheduler.inversionStep(model(y, t), timestep: t, sample: y, steps: 50) }
            let error = y.maxAbsDifference(try trajectories.tensor("\(name).inverted"))
            #expect(error <= 1e-4, "inversion error \(error)")
            print("[reference] ddim \(name) inversion: max abs error \(error)")
        }
    }

    @Test("DDIM: every step count gives that many timesteps, all trained; unreachable counts are refused")
    func stepCounts() throws {
        func scheduler(_ values: [String: JSONValue]) throws -> DDIMScheduler {
            try DDIMScheduler(ModelConfig(values: values, file: URL(fileURLWithPath: "scheduler_config.json")))
        }
        let trailing = try scheduler(["timestep_spacing": .string("trailing")])
        // diffusers' ceil(T / ratio) makes 62 timesteps of a 61-step run, the last one -1.
        for steps in [1, 50, 61, 103, 121, 122, 201, 999, 1000] {
            let timesteps = trailing.timesteps(steps: steps)
            #expect(timesteps.count == steps && timesteps.allSatisfy { (0..<1000).contains($0) }, "trailing, \(steps) steps")
            #expect(timesteps.first == 999)
        }
        let offset = try scheduler(["steps_offset": .int(1)])
        #expect(offset.supports(steps: 500) && !offset.supports(steps: 1000))
        #expect(offset.maximumSteps == 999)
        #expect(!offset.supports(steps: 0))
        #expect(throws: ModelDirectoryError.self) { try scheduler(["trained_betas": .array([.double(0.1)])]) }
    }

    @Test("torch.randn parity for several seeds and shapes")
    func randn() throws {
        let file = try Fixtures.tensors("randn.safetensors")
        var worst: Float = 0
        for name in file.tensorNames {
            let parts = name.split(separator: "/")
            let seed = UInt64(parts[0])!
            let expected = try file.tensor(name)
            var generator = TorchGenerator(seed: seed)
            let actual: Tensor
            if parts[1] == "consecutive" {
                let first = generator.normal([2, 3]), second = generator.normal([20])
                actual = Tensor(shape: expected.shape, values: first.scalars + second.scalars)
            } else {
                actual = generator.normal(parts[1].split(separator: "x").map { Int($0)! })
            }
            let error = actual.maxAbsDifference(expected.reshaped(actual.shape))
            worst = max(worst, error)
            #expect(error <= 1e-6, "\(name): max abs error \(error)")
        }
        print("[reference] randn: worst max abs error \(worst) over \(file.tensorNames.count) tensors")
    }
}
