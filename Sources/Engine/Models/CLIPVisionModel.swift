import EditContract
import Foundation

/// Hyper-parameters of a CLIP vision transformer, from a CLIPModel config's `vision_config`.
struct CLIPVisionConfiguration: Sendable {
    let width: Int
    let intermediateWidth: Int
    let layers: Int
    let heads: Int
    /// The square side images are resized to, and the side of one patch.
    let imageSize: Int
    let patchSize: Int
    let channels: Int
    let activation: CLIPEncoder.Activation
    let layerNormEpsilon: Float

    init(_ config: ModelConfig) throws {
        width = try config.size("hidden_size")
        intermediateWidth = try config.size("intermediate_size")
        layers = try config.size("num_hidden_layers")
        heads = try config.size("num_attention_heads")
        imageSize = try config.size("image_size", default: 224)
        patchSize = try config.size("patch_size", default: 32)
        channels = try config.size("num_channels", default: 3)
        let name = try config.string("hidden_act", default: "quick_gelu")
        guard let activation = CLIPEncoder.Activation(rawValue: name) else {
            throw ModelDirectoryError(path: config.file.path, problem: "has vision hidden_act '\(name)'", fix: "use quick_gelu or gelu")
        }
        self.activation = activation
        layerNormEpsilon = Float(try config.double("layer_norm_eps", default: 1e-5))
        guard width % heads == 0, imageSize % patchSize == 0, channels == 3 else {
            throw ModelDirectoryError(path: config.file.path, problem: "has a vision_config whose sizes do not fit together (width \(width), \(heads) heads, image \(imageSize), patch \(patchSize), \(channels) channels)",
                                      fix: "use a CLIP vision configuration with 3 channels and sides that divide evenly")
        }
    }

    var patchesPerSide: Int { imageSize / patchSize }
}

/// The CLIP vision transformer (transformers' CLIPVisionTransformer): non-overlapping patches
/// embedded by a strided convolution without bias, a class token, learned positions, a
/// LayerNorm before the encoder, and the class token's final state, LayerNormed, as the pooled
/// output.
struct CLIPVisionModel: Sendable {
    let configuration: CLIPVisionConfiguration
    /// The patch convolution as a product: [width, 3 * patch * patch], patch values ordered
    /// (channel, row, column) as the convolution's weight is.
    let patchEmbedding: Linear
    let classEmbedding: Tensor  // [width]
    let positionEmbedding: Tensor  // [patches + 1, width]
    let preNorm: LayerNorm
    let encoder: CLIPEncoder
    let postNorm: LayerNorm

    /// Weights named as transformers saves a CLIPModel's (`vision_model.` prefix).
    init(configuration c: CLIPVisionConfiguration, weights file: SafeTensorsFile) throws {
        configuration = c
        let root = Weights(file, prefix: "vision_model.")
        let patch = c.patchSize
        let kernel = try root("embeddings.patch_embedding.weight", shape: [c.width, c.channels, patch, patch])
        patchEmbedding = Linear(weight: kernel.reshaped([c.width, c.channels * patch * patch]), bias: nil)
        classEmbedding = try root("embeddings.class_embedding", shape: [c.width])
        let count = c.patchesPerSide * c.patchesPerSide + 1
        positionEmbedding = try root("embeddings.position_embedding.weight", shape: [count, c.width])
        preNorm = try LayerNorm(root, "pre_layrnorm", width: c.width, epsilon: c.layerNormEpsilon)
        encoder = try CLIPEncoder(root, layers: c.layers, width: c.width, intermediateWidth: c.intermediateWidth, heads: c.heads,
                                  activation: c.activation, epsilon: c.layerNormEpsilon)
        postNorm = try LayerNorm(root, "post_layernorm", width: c.width, epsilon: c.layerNormEpsilon)
    }

    /// Pixel values [B, 3, size, size] (resized and normalised) -> pooled output [B, width].
    func callAsFunction(_ pixels: Tensor, precision: Precision = .fp32) -> Tensor {
        let c = configuration
        let (batch, side, patch, grid) = (pixels.shape[0], c.imageSize, c.patchSize, c.patchesPerSide)
        precondition(pixels.shape == [batch, 3, side, side], "pixels \(pixels.shape) are not [B, 3, \(side), \(side)]")
        // [B * grid * grid, 3 * patch * patch]: each patch's values in the weight's order.
        let values = pixels.scalars
        var patches = [Float](repeating: 0, count: batch * grid * grid * 3 * patch * patch)
        var index = 0
        for b in 0..<batch {
            for py in 0..<grid {
                for px in 0..<grid {
                    for channel in 0..<3 {
                        for y in 0..<patch {
                            let row = ((b * 3 + channel) * side + py * patch + y) * side + px * patch
                            for x in 0..<patch {
                                patches[index] = values[row + x]
                                index += 1
                            }
                        }
                    }
                }
            }
        }
        let embedded = patchEmbedding(Tensor(shape: [batch * grid * grid, 3 * patch * patch], values: patches), precision: precision).scalars
        // [B, 1 + grid * grid, width]: the class token first, then the patches, plus positions.
        let tokens = grid * grid + 1, width = c.width
        let classToken = classEmbedding.scalars, positions = positionEmbedding.scalars
        var sequence = [Float](repeating: 0, count: batch * tokens * width)
        for b in 0..<batch {
            for t in 0..<tokens {
                for w in 0..<width {
                    let value = t == 0 ? classToken[w] : embedded[(b * (tokens - 1) + t - 1) * width + w]
                    sequence[(b * tokens + t) * width + w] = value + positions[t * width + w]
                }
            }
        }
        let hidden = encoder(preNorm(Tensor(shape: [batch, tokens, width], values: sequence)), mask: nil, precision: precision).last
        let states = hidden.scalars
        let pooled = (0..<batch).flatMap { b in states[(b * tokens * width)..<((b * tokens + 1) * width)] }
        return postNorm(Tensor(shape: [batch, width], values: pooled))
    }
}
