import EditContract
import Foundation

/// Hyper-parameters of a CLIPTextModel, from its config.json.
struct CLIPTextConfiguration: Sendable {
    let vocabularySize: Int
    let width: Int
    let intermediateWidth: Int
    let layers: Int
    let heads: Int
    let positions: Int
    let activation: CLIPEncoder.Activation
    let layerNormEpsilon: Float
    /// The end-of-text token, where the pooled output is taken (`eos_token_id`; 2 in old
    /// configs, where transformers takes the highest id instead, as the original CLIP did).
    let endOfTextID: Int
    /// The width of `text_projection` (CLIPTextModelWithProjection), when the weights have one.
    let projectionWidth: Int

    /// `projectionWidth`: the projection's width when the model's config gives it elsewhere
    /// (CLIPModel's top-level `projection_dim`).
    init(_ config: ModelConfig, projectionWidth: Int? = nil) throws {
        vocabularySize = try config.int("vocab_size")
        width = try config.size("hidden_size")
        intermediateWidth = try config.size("intermediate_size")
        layers = try config.size("num_hidden_layers")
        heads = try config.size("num_attention_heads")
        positions = try config.size("max_position_embeddings", default: 77)
        let name = try config.string("hidden_act", default: "quick_gelu")
        guard let activation = CLIPEncoder.Activation(rawValue: name) else {
            throw ModelDirectoryError(path: config.file.path, problem: "has hidden_act '\(name)'", fix: "use quick_gelu or gelu")
        }
        self.activation = activation
        layerNormEpsilon = Float(try config.double("layer_norm_eps", default: 1e-5))
        endOfTextID = try config.int("eos_token_id", default: 2)
        self.projectionWidth = try projectionWidth ?? config.size("projection_dim", default: 512)
        guard width % heads == 0 else {
            throw ModelDirectoryError(path: config.file.path, problem: "has hidden_size \(width) not divisible by \(heads) heads", fix: "correct the configuration")
        }
    }
}

/// The CLIP text transformer (transformers' CLIPTextModel, and CLIPTextModelWithProjection when
/// the weights hold a `text_projection`): token and position embeddings, pre-norm causal
/// self-attention layers, a final LayerNorm. Its last hidden state conditions SD 1.x and 2.x's
/// UNet; SDXL's takes the penultimate one of two encoders and the second's projected pooled
/// output.
struct CLIPTextModel: Sendable {
    let configuration: CLIPTextConfiguration
    let tokenEmbedding: Embedding
    let positionEmbedding: Tensor  // [positions, width]
    let encoder: CLIPEncoder
    let finalNorm: LayerNorm
    /// CLIPTextModelWithProjection's projection of the pooled output (no bias).
    let textProjection: Linear?

    /// Loads weights named as transformers saves them (`text_model.` prefix, which some
    /// conversions drop); `position_ids` is not used.
    init(configuration c: CLIPTextConfiguration, weights file: SafeTensorsFile, updates: [String: [LoRADelta]] = [:]) throws {
        configuration = c
        let root = Weights(file, prefix: file.entries["text_model.embeddings.token_embedding.weight"] != nil ? "text_model." : "", updates: updates)
        tokenEmbedding = try Embedding(root.scoped("embeddings"), "token_embedding", count: c.vocabularySize, width: c.width)
        positionEmbedding = try root("embeddings.position_embedding.weight", shape: [c.positions, c.width])
        encoder = try CLIPEncoder(root, layers: c.layers, width: c.width, intermediateWidth: c.intermediateWidth, heads: c.heads,
                                  activation: c.activation, epsilon: c.layerNormEpsilon)
        finalNorm = try LayerNorm(root, "final_layer_norm", width: c.width, epsilon: c.layerNormEpsilon)
        textProjection = file.entries["text_projection.weight"] == nil ? nil
            : try Linear(Weights(file, updates: updates), "text_projection", input: c.width, output: c.projectionWidth, bias: false)
    }

    /// Whether the weights hold a `text_projection` (CLIPTextModelWithProjection).
    var hasProjection: Bool { textProjection != nil }

    /// Loads the `text_encoder` component of a model directory.
    init(component: ModelComponent, updates: [String: [LoRADelta]] = [:]) throws {
        try self.init(configuration: CLIPTextConfiguration(component.config), weights: component.weights(), updates: updates)
    }

    /// Token ids [B][N] (N <= positions) -> last hidden state [B, N, width].
    func callAsFunction(_ ids: [[Int]], precision: Precision = .fp32) -> Tensor {
        encode(ids, precision: precision).lastHiddenState
    }

    /// Every output a pipeline conditions on: the last hidden state, the penultimate one (the
    /// input of the last layer, not normed: transformers' `hidden_states[-2]`), and with a
    /// projection the projected pooled output (`text_embeds`, at each row's end-of-text token).
    func encode(_ ids: [[Int]], precision: Precision = .fp32) -> CLIPTextEncoding {
        let n = ids.first?.count ?? 0
        precondition(ids.allSatisfy { $0.count == n } && n <= configuration.positions && n > 0,
                     "token sequences must share one length of 1 to \(configuration.positions)")
        let batch = ids.count, width = configuration.width
        // [B*N, width] token vectors plus the first N positions.
        var x = tokenEmbedding(ids.flatMap { $0 }).reshaped([batch, n, width])
        let positions = positionEmbedding.slice(0..<n).repeated(batch).reshaped([batch, n, width])
        x = x + positions
        let causal = Tensor(shape: [n, n], values: (0..<(n * n)).map { ($0 % n) > ($0 / n) ? -Float.infinity : 0 })
        let (output, penultimate) = encoder(x, mask: causal, precision: precision)
        let last = finalNorm(output)
        var textEmbeds: Tensor?
        if let textProjection {
            // [B, width]: each row's final-normed vector at its end-of-text token.
            let hidden = last.scalars
            var pooled = [Float]()
            pooled.reserveCapacity(batch * width)
            for (row, tokens) in ids.enumerated() {
                let position = endOfTextPosition(tokens)
                let start = (row * n + position) * width
                pooled += hidden[start..<(start + width)]
            }
            textEmbeds = textProjection(Tensor(shape: [batch, width], values: pooled), precision: precision)
        }
        return CLIPTextEncoding(lastHiddenState: last, penultimateHiddenState: penultimate, textEmbeds: textEmbeds)
    }

    /// transformers' pooling position: the first end-of-text token, or with the legacy id 2
    /// the highest token id (the original CLIP's end of text is its vocabulary's last entry).
    func endOfTextPosition(_ tokens: [Int]) -> Int {
        if configuration.endOfTextID == 2 {
            return tokens.indices.max { tokens[$0] < tokens[$1] } ?? 0
        }
        return tokens.firstIndex(of: configuration.endOfTextID) ?? 0
    }
}

/// A CLIP text encoder's outputs for a batch of token sequences.
struct CLIPTextEncoding: Sendable {
    /// [B, N, width], after the final LayerNorm.
    var lastHiddenState: Tensor
    /// [B, N, width], the last layer's input (SDXL's conditioning).
    var penultimateHiddenState: Tensor
    /// [B, projectionWidth]: CLIPTextModelWithProjection's `text_embeds`; nil without a projection.
    var textEmbeds: Tensor?
}
