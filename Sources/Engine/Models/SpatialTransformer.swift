import EditContract
/// Multi-head attention with separate query, key and value projections (diffusers' Attention
/// in the UNet's transformer blocks): no biases on q/k/v, a biased output projection.
struct MultiHeadAttention: Sendable {
    let heads: Int
    let query, key, value, output: Linear

    init(_ w: Weights, queryWidth: Int, contextWidth: Int, heads: Int, headWidth: Int) throws {
        self.heads = heads
        let inner = heads * headWidth
        query = try Linear(w, "to_q", input: queryWidth, output: inner, bias: w.contains("to_q.bias"))
        key = try Linear(w, "to_k", input: contextWidth, output: inner, bias: w.contains("to_k.bias"))
        value = try Linear(w, "to_v", input: contextWidth, output: inner, bias: w.contains("to_v.bias"))
        output = try Linear(w, "to_out.0", input: inner, output: queryWidth)
    }

    /// residual + attention(x, context): x [B, N, C], context [B, M, D] (x itself for
    /// self-attention), residual [B, N, C]. The output projection accumulates onto the residual.
    func adding(_ x: Tensor, context: Tensor?, to residual: Tensor, precision: Precision,
                hook: ((AttentionProbabilities) -> Void)?) -> Tensor {
        let source = context ?? x
        let attended = Attention.scaledDotProduct(query: query(x, precision: precision), key: key(source, precision: precision),
                                                  value: value(source, precision: precision), heads: heads,
                                                  precision: precision, hook: hook)
        return output.adding(attended, to: residual, precision: precision)
    }
}

/// diffusers' GEGLU: one projection to twice the width, whose first half is multiplied by the
/// GELU of its second. Run as two products, the second with the GELU and the multiplication
/// fused into its store.
struct GEGLU: Sendable {
    let value, gate: Linear

    init(_ w: Weights, _ name: String, input: Int, output: Int) throws {
        let projection = try Linear(w, name, input: input, output: 2 * output)
        value = projection.rows(0..<output)
        gate = projection.rows(output..<(2 * output))
    }

    /// [..., input] -> [..., output]
    func callAsFunction(_ x: Tensor, precision: Precision) -> Tensor {
        gate.gelu(x, times: value(x, precision: precision), precision: precision)
    }
}

/// diffusers' BasicTransformerBlock: pre-norm self-attention, cross-attention to the text, and
/// a GEGLU feed-forward, each with a residual.
struct BasicTransformerBlock: Sendable {
    let norm1, norm2, norm3: LayerNorm
    let selfAttention, crossAttention: MultiHeadAttention
    let feedForwardIn: GEGLU
    let feedForwardOut: Linear

    init(_ w: Weights, width: Int, contextWidth: Int, heads: Int) throws {
        let headWidth = width / heads
        norm1 = try LayerNorm(w, "norm1", width: width, epsilon: 1e-5)
        selfAttention = try MultiHeadAttention(w.scoped("attn1"), queryWidth: width, contextWidth: width, heads: heads, headWidth: headWidth)
        norm2 = try LayerNorm(w, "norm2", width: width, epsilon: 1e-5)
        crossAttention = try MultiHeadAttention(w.scoped("attn2"), queryWidth: width, contextWidth: contextWidth, heads: heads, headWidth: headWidth)
        norm3 = try LayerNorm(w, "norm3", width: width, epsilon: 1e-5)
        feedForwardIn = try GEGLU(w, "ff.net.0.proj", input: width, output: 4 * width)
        feedForwardOut = try Linear(w, "ff.net.2", input: 4 * width, output: width)
    }

    /// x [B, H*W, C], context [B, M, D]
    func callAsFunction(_ x: Tensor, context: Tensor, height: Int, width: Int, place: UNetPlace, router: AttentionRouter,
                        precision: Precision) -> Tensor {
        var x = x
        let selfHook = router.next(place: place, isCross: false, height: height, width: width, heads: selfAttention.heads)
        x = selfAttention.adding(norm1(x), context: nil, to: x, precision: precision, hook: selfHook)
        let crossHook = router.next(place: place, isCross: true, height: height, width: width, heads: crossAttention.heads)
        x = crossAttention.adding(norm2(x), context: context, to: x, precision: precision, hook: crossHook)
        return feedForwardOut.adding(feedForwardIn(norm3(x), precision: precision), to: x, precision: precision)
    }
}

/// diffusers' Transformer2DModel on images: GroupNorm, a projection in (1x1 conv, or linear
/// with `use_linear_projection`: the same product over channels), transformer blocks over the
/// H*W positions, a projection out, and a residual. Channels-last, so the positions are the
/// rows of the image as it is.
struct SpatialTransformer: Sendable {
    let norm: GroupNorm
    let projectIn: Linear
    let projectOut: Linear
    let blocks: [BasicTransformerBlock]

    init(_ w: Weights, channels: Int, contextWidth: Int, heads: Int, layers: Int, groups: Int, linearProjection: Bool) throws {
        norm = try GroupNorm(w, "norm", groups: groups, channels: channels, epsilon: 1e-6)
        if linearProjection {
            projectIn = try Linear(w, "proj_in", input: channels, output: channels)
            projectOut = try Linear(w, "proj_out", input: channels, output: channels)
        } else {
            // Saved as 1x1 convolutions [C, C, 1, 1].
            func matrix(_ name: String) throws -> Linear {
                Linear(source: try w.source(name + ".weight", shape: [channels, channels, 1, 1]).reshaped([channels, channels]),
                       bias: try w(name + ".bias", shape: [channels]))
            }
            projectIn = try matrix("proj_in")
            projectOut = try matrix("proj_out")
        }
        blocks = try (0..<layers).map {
            try BasicTransformerBlock(w.scoped("transformer_blocks.\($0)"), width: channels, contextWidth: contextWidth, heads: heads)
        }
    }

    /// x [B, H, W, C], context [B, M, D] -> [B, H, W, C]
    func callAsFunction(_ x: Tensor, context: Tensor, place: UNetPlace, router: AttentionRouter, precision: Precision) -> Tensor {
        let (batch, height, width, channels) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var h = projectIn(norm(x).reshaped([batch, height * width, channels]), precision: precision)  // [B, HW, C]
        for block in blocks {
            h = block(h, context: context, height: height, width: width, place: place, router: router, precision: precision)
        }
        return projectOut.adding(h, to: x.reshaped([batch, height * width, channels]), precision: precision).reshaped(x.shape)
    }
}
