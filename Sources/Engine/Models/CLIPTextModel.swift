import EditContract
import Foundation

/// Hyper-parameters of a CLIPTextModel, from its config.json.
public struct CLIPTextConfiguration: Sendable {
    public let vocabularySize: Int
    public let width: Int
    public let intermediateWidth: Int
    public let layers: Int
    public let heads: Int
    public let positions: Int
    public let activation: Activation
    public let layerNormEpsilon: Float

    public enum Activation: String, Sendable {
        case quickGELU = "quick_gelu", gelu
    }

    public init(_ config: ModelConfig) throws {
        vocabularySize = try config.int("vocab_size")
        width = try config.size("hidden_size")
        intermediateWidth = try config.size("intermediate_size")
        layers = try config.size("num_hidden_layers")
        heads = try config.size("num_attention_heads")
        positions = try config.size("max_position_embeddings", default: 77)
        let name = try config.string("hidden_act", default: "quick_gelu")
        guard let activation = Activation(rawValue: name) else {
            throw ModelDirectoryError(path: config.file.path, problem: "has hidden_act '\(name)'", fix: "use quick_gelu or gelu")
        }
        self.activation = activation
        layerNormEpsilon = Float(try config.double("layer_norm_eps", default: 1e-5))
        guard width % heads == 0 else {
            throw ModelDirectoryError(path: config.file.path, problem: "has hidden_size \(width) not divisible by \(heads) heads", fix: "correct the configuration")
        }
    }
}

/// The CLIP text transformer (transformers' CLIPTextModel): token and position embeddings,
/// pre-norm causal self-attention layers, a final LayerNorm. Its last hidden state conditions
/// the UNet.
public struct CLIPTextModel: Sendable {
    public let configuration: CLIPTextConfiguration
    let tokenEmbedding: Embedding
    let positionEmbedding: Tensor  // [positions, width]
    let layers: [EncoderLayer]
    let finalNorm: LayerNorm

    struct EncoderLayer: Sendable {
        let norm1, norm2: LayerNorm
        let query, key, value, output: Linear
        let fc1, fc2: Linear
    }

    /// Loads weights named as transformers saves them (`text_model.` prefix, which some
    /// conversions drop); `position_ids` is not used.
    public init(configuration c: CLIPTextConfiguration, weights file: SafeTensorsFile) throws {
        configuration = c
        let root = file.entries["text_model.embeddings.token_embedding.weight"] != nil ? Weights(file, prefix: "text_model.") : Weights(file)
        tokenEmbedding = try Embedding(root.scoped("embeddings"), "token_embedding", count: c.vocabularySize, width: c.width)
        positionEmbedding = try root("embeddings.position_embedding.weight", shape: [c.positions, c.width])
        layers = try (0..<c.layers).map { i in
            let w = root.scoped("encoder.layers.\(i)")
            return EncoderLayer(
                norm1: try LayerNorm(w, "layer_norm1", width: c.width, epsilon: c.layerNormEpsilon),
                norm2: try LayerNorm(w, "layer_norm2", width: c.width, epsilon: c.layerNormEpsilon),
                query: try Linear(w, "self_attn.q_proj", input: c.width, output: c.width),
                key: try Linear(w, "self_attn.k_proj", input: c.width, output: c.width),
                value: try Linear(w, "self_attn.v_proj", input: c.width, output: c.width),
                output: try Linear(w, "self_attn.out_proj", input: c.width, output: c.width),
                fc1: try Linear(w, "mlp.fc1", input: c.width, output: c.intermediateWidth),
                fc2: try Linear(w, "mlp.fc2", input: c.intermediateWidth, output: c.width))
        }
        finalNorm = try LayerNorm(root, "final_layer_norm", width: c.width, epsilon: c.layerNormEpsilon)
    }

    /// Loads the `text_encoder` component of a model directory.
    public init(component: ModelComponent) throws {
        try self.init(configuration: CLIPTextConfiguration(component.config), weights: component.weights())
    }

    /// Token ids [B][N] (N <= positions) -> last hidden state [B, N, width].
    public func callAsFunction(_ ids: [[Int]], precision: Precision = .fp32) -> Tensor {
        let n = ids.first?.count ?? 0
        precondition(ids.allSatisfy { $0.count == n } && n <= configuration.positions,
                     "token sequences must share one length of at most \(configuration.positions)")
        let batch = ids.count, width = configuration.width
        // [B*N, width] token vectors plus the first N positions.
        var x = tokenEmbedding(ids.flatMap { $0 }).reshaped([batch, n, width])
        let positions = positionEmbedding.slice(0..<n).repeated(batch).reshaped([batch, n, width])
        x = x + positions
        let causal = Tensor(shape: [n, n], values: (0..<(n * n)).map { ($0 % n) > ($0 / n) ? -Float.infinity : 0 })
        for layer in layers {
            let h = layer.norm1(x)
            let attended = Attention.scaledDotProduct(query: layer.query(h, precision: precision), key: layer.key(h, precision: precision),
                                                      value: layer.value(h, precision: precision), heads: configuration.heads, mask: causal)
            x = layer.output.adding(attended, to: x, precision: precision)
            let inner = layer.fc1(layer.norm2(x), precision: precision)
            x = layer.fc2.adding(configuration.activation == .quickGELU ? inner.quickGELU() : inner.gelu(), to: x, precision: precision)
        }
        return finalNorm(x)
    }
}
