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

    /// x [B, N, C], context [B, M, D] (x itself for self-attention) -> [B, N, C]
    func callAsFunction(_ x: Tensor, context: Tensor?, hook: ((AttentionProbabilities) -> Void)?) -> Tensor {
        let source = context ?? x
        return output(Attention.scaledDotProduct(query: query(x), key: key(source), value: value(source), heads: heads, hook: hook))
    }
}

/// diffusers' BasicTransformerBlock: pre-norm self-attention, cross-attention to the text, and
/// a GEGLU feed-forward, each with a residual.
struct BasicTransformerBlock: Sendable {
    let norm1, norm2, norm3: LayerNorm
    let selfAttention, crossAttention: MultiHeadAttention
    let feedForwardIn, feedForwardOut: Linear

    init(_ w: Weights, width: Int, contextWidth: Int, heads: Int) throws {
        let headWidth = width / heads
        norm1 = try LayerNorm(w, "norm1", width: width, epsilon: 1e-5)
        selfAttention = try MultiHeadAttention(w.scoped("attn1"), queryWidth: width, contextWidth: width, heads: heads, headWidth: headWidth)
        norm2 = try LayerNorm(w, "norm2", width: width, epsilon: 1e-5)
        crossAttention = try MultiHeadAttention(w.scoped("attn2"), queryWidth: width, contextWidth: contextWidth, heads: heads, headWidth: headWidth)
        norm3 = try LayerNorm(w, "norm3", width: width, epsilon: 1e-5)
        feedForwardIn = try Linear(w, "ff.net.0.proj", input: width, output: 8 * width)
        feedForwardOut = try Linear(w, "ff.net.2", input: 4 * width, output: width)
    }

    /// x [B, H*W, C], context [B, M, D]
    func callAsFunction(_ x: Tensor, context: Tensor, height: Int, width: Int, place: UNetPlace, router: AttentionRouter) -> Tensor {
        var x = x
        let selfHook = router.next(place: place, isCross: false, height: height, width: width, heads: selfAttention.heads)
        x = x + selfAttention(norm1(x), context: nil, hook: selfHook)
        let crossHook = router.next(place: place, isCross: true, height: height, width: width, heads: crossAttention.heads)
        x = x + crossAttention(norm2(x), context: context, hook: crossHook)
        x = x + feedForwardOut(feedForwardIn(norm3(x)).gatedGELU())
        return x
    }
}

/// diffusers' Transformer2DModel on images: GroupNorm, a projection in (1x1 conv, or linear
/// with `use_linear_projection`), transformer blocks over the H*W positions, a projection out,
/// and a residual.
struct SpatialTransformer: Sendable {
    let norm: GroupNorm
    let projectIn: Projection
    let projectOut: Projection
    let blocks: [BasicTransformerBlock]

    enum Projection: Sendable {
        case convolution(Conv2dKernel)
        case linear(Linear)
    }

    init(_ w: Weights, channels: Int, contextWidth: Int, heads: Int, layers: Int, groups: Int, linearProjection: Bool) throws {
        norm = try GroupNorm(w, "norm", groups: groups, channels: channels, epsilon: 1e-6)
        if linearProjection {
            projectIn = .linear(try Linear(w, "proj_in", input: channels, output: channels))
            projectOut = .linear(try Linear(w, "proj_out", input: channels, output: channels))
        } else {
            projectIn = .convolution(try Conv2dKernel(w, "proj_in", input: channels, output: channels, kernel: 1))
            projectOut = .convolution(try Conv2dKernel(w, "proj_out", input: channels, output: channels, kernel: 1))
        }
        blocks = try (0..<layers).map {
            try BasicTransformerBlock(w.scoped("transformer_blocks.\($0)"), width: channels, contextWidth: contextWidth, heads: heads)
        }
    }

    /// x [B, C, H, W], context [B, M, D] -> [B, C, H, W]
    func callAsFunction(_ x: Tensor, context: Tensor, place: UNetPlace, router: AttentionRouter) -> Tensor {
        let (batch, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        // Both projections are products over the channels, with or without a bias; each is
        // computed straight into (or out of) the token-major layout, so no transpose is needed.
        var h = tokensFromChannels(norm(x).reshaped([batch, channels, height * width]), projectIn)  // [B, HW, C]
        for block in blocks {
            h = block(h, context: context, height: height, width: width, place: place, router: router)
        }
        return channelsFromTokens(h, projectOut).reshaped([batch, channels, height, width]) + x
    }

    /// The projection's weight [out, in] and bias, whichever form it was saved in.
    private static func matrix(_ projection: Projection) -> (Tensor, Tensor?) {
        switch projection {
        case .convolution(let conv): return (conv.weight.reshaped([conv.outputChannels, conv.inputChannels]), conv.bias)
        case .linear(let linear): return (linear.weight, linear.bias)
        }
    }

    /// x [B, C, P] -> (W x[b])^T + bias: [B, P, C']
    private func tokensFromChannels(_ x: Tensor, _ projection: Projection) -> Tensor {
        let (weight, bias) = Self.matrix(projection)
        let (batch, channels, positions) = (x.shape[0], x.shape[1], x.shape[2])
        let outputs = weight.shape[0]
        var result = Tensor(uninitializedShape: [batch, positions, outputs])
        x.withUnsafeBufferPointer { px in weight.withUnsafeBufferPointer { pw in result.withUnsafeMutableBufferPointer { pr in
            for b in 0..<batch {
                // C[P, C'] = x[b]^T [P, C] * W^T [C, C']
                BLAS.parallelGEMM(transposeA: true, transposeB: true, m: positions, n: outputs, k: channels,
                                  a: px.baseAddress! + b * channels * positions, lda: positions,
                                  b: pw.baseAddress!, ldb: channels, c: pr.baseAddress! + b * positions * outputs, ldc: outputs)
            }
        } } }
        if let bias { result.addBiasInPlace(bias, axis: -1) }
        return result
    }

    /// h [B, P, C'] -> W h[b]^T + bias: [B, C, P]
    private func channelsFromTokens(_ h: Tensor, _ projection: Projection) -> Tensor {
        let (weight, bias) = Self.matrix(projection)
        let (batch, positions, inputs) = (h.shape[0], h.shape[1], h.shape[2])
        let outputs = weight.shape[0]
        var result = Tensor(uninitializedShape: [batch, outputs, positions])
        h.withUnsafeBufferPointer { ph in weight.withUnsafeBufferPointer { pw in result.withUnsafeMutableBufferPointer { pr in
            for b in 0..<batch {
                // C[C, P] = W [C, C'] * h[b]^T [C', P]
                BLAS.parallelGEMM(transposeB: true, m: outputs, n: positions, k: inputs, a: pw.baseAddress!, lda: inputs,
                                  b: ph.baseAddress! + b * positions * inputs, ldb: inputs,
                                  c: pr.baseAddress! + b * outputs * positions, ldc: positions)
            }
        } } }
        if let bias { result.addBiasInPlace(bias, axis: 1) }
        return result
    }
}
