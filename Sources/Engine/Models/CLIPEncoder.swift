import EditContract

/// The transformer both CLIP towers share: pre-norm layers of multi-head self-attention and a
/// two-layer MLP, each added to its input (transformers' CLIPEncoder).
struct CLIPEncoder: Sendable {
    struct Layer: Sendable {
        let norm1, norm2: LayerNorm
        let query, key, value, output: Linear
        let fc1, fc2: Linear
    }

    enum Activation: String, Sendable {
        case quickGELU = "quick_gelu", gelu
    }

    let layers: [Layer]
    let heads: Int
    let activation: Activation

    /// The layers under `weights` ("encoder.layers.N.").
    init(_ weights: Weights, layers count: Int, width: Int, intermediateWidth: Int, heads: Int, activation: Activation, epsilon: Float) throws {
        layers = try (0..<count).map { i in
            let w = weights.scoped("encoder.layers.\(i)")
            return Layer(norm1: try LayerNorm(w, "layer_norm1", width: width, epsilon: epsilon),
                         norm2: try LayerNorm(w, "layer_norm2", width: width, epsilon: epsilon),
                         query: try Linear(w, "self_attn.q_proj", input: width, output: width),
                         key: try Linear(w, "self_attn.k_proj", input: width, output: width),
                         value: try Linear(w, "self_attn.v_proj", input: width, output: width),
                         output: try Linear(w, "self_attn.out_proj", input: width, output: width),
                         fc1: try Linear(w, "mlp.fc1", input: width, output: intermediateWidth),
                         fc2: try Linear(w, "mlp.fc2", input: intermediateWidth, output: width))
        }
        self.heads = heads
        self.activation = activation
    }

    /// [B, N, width] -> the last layer's output, and its input (the penultimate hidden state).
    func callAsFunction(_ input: Tensor, mask: Tensor?, precision: Precision) -> (last: Tensor, penultimate: Tensor) {
        var x = input
        var penultimate = x
        for (index, layer) in layers.enumerated() {
            if index == layers.count - 1 { penultimate = x }
            let h = layer.norm1(x)
            let attended = Attention.scaledDotProduct(query: layer.query(h, precision: precision), key: layer.key(h, precision: precision),
                                                      value: layer.value(h, precision: precision), heads: heads, mask: mask)
            x = layer.output.adding(attended, to: x, precision: precision)
            let inner = layer.fc1(layer.norm2(x), precision: precision)
            x = layer.fc2.adding(activation == .quickGELU ? inner.quickGELU() : inner.gelu(), to: x, precision: precision)
        }
        return (x, penultimate)
    }
}
