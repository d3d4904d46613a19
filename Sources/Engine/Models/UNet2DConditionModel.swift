import EditContract
/// diffusers' UNet2DConditionModel: the denoiser of Stable Diffusion 1.x/2.x and SDXL, and of
/// the embedded model's base and super-resolution stages. Every attention layer reports to an
/// optional `AttentionController`.
public struct UNet2DConditionModel: Sendable {
    let configuration: UNetConfiguration
    let timeEmbedding: TimestepEmbedding
    let classTable: Embedding?
    let classTimestepEmbedding: TimestepEmbedding?
    /// SDXL: pooled text and time ids to the timestep embedding's width (`add_embedding`).
    let addedEmbedding: TimestepEmbedding?
    let convIn: Conv2dKernel
    let downBlocks: [UNetDownBlock]
    let midBlock: UNetMidBlock?
    let upBlocks: [UNetUpBlock]
    let normOut: GroupNorm
    let convOut: Conv2dKernel

    init(configuration c: UNetConfiguration, weights file: SafeTensorsFile, updates: [String: [LoRADelta]] = [:]) throws {
        configuration = c
        let w = Weights(file, updates: updates)
        let first = c.blockOutChannels[0], timeWidth = c.timeEmbeddingWidth
        timeEmbedding = try TimestepEmbedding(w.scoped("time_embedding"), input: first, width: timeWidth, conditionWidth: c.guidanceEmbeddingWidth)
        switch c.classEmbedding {
        case .table(let count)?:
            classTable = try Embedding(w, "class_embedding", count: count, width: timeWidth)
            classTimestepEmbedding = nil
        case .timestep?:
            classTable = nil
            classTimestepEmbedding = try TimestepEmbedding(w.scoped("class_embedding"), input: first, width: timeWidth)
        case nil:
            classTable = nil
            classTimestepEmbedding = nil
        }
        addedEmbedding = try c.textTimeEmbedding.map { try TimestepEmbedding(w.scoped("add_embedding"), input: $0.inputWidth, width: timeWidth) }
        convIn = try Conv2dKernel(w, "conv_in", input: c.inChannels, output: first, kernel: 3)

        func transformer(_ w: Weights, channels: Int, level: Int, heads: Int) throws -> SpatialTransformer {
            try SpatialTransformer(w, channels: channels, contextWidth: c.crossAttentionWidth, heads: heads,
                                   layers: c.transformerLayersPerBlock[level], groups: c.normGroups, linearProjection: c.linearProjection)
        }
        func resnet(_ w: Weights, _ input: Int, _ output: Int) throws -> ResnetBlock2D {
            try ResnetBlock2D(w, input: input, output: output, timeChannels: timeWidth, groups: c.normGroups, epsilon: c.normEpsilon)
        }

        var down: [UNetDownBlock] = []
        var output = first
        for (level, type) in c.downBlockTypes.enumerated() {
            let input = output
            output = c.blockOutChannels[level]
            let b = w.scoped("down_blocks.\(level)")
            let cross = type == UNetConfiguration.crossDown
            let layers = c.layersPerBlock[level]
            down.append(UNetDownBlock(
                resnets: try (0..<layers).map { try resnet(b.scoped("resnets.\($0)"), $0 == 0 ? input : output, output) },
                attentions: cross ? try (0..<layers).map { try transformer(b.scoped("attentions.\($0)"), channels: output, level: level, heads: c.heads[level]) } : [],
                downsample: level < c.blockOutChannels.count - 1 ? try Downsample2D(b.scoped("downsamplers.0"), channels: output, symmetricPadding: true) : nil))
        }
        downBlocks = down

        let last = c.blockOutChannels[c.blockOutChannels.count - 1]
        if c.hasMidBlock {
            let m = w.scoped("mid_block")
            midBlock = UNetMidBlock(first: try resnet(m.scoped("resnets.0"), last, last), second: try resnet(m.scoped("resnets.1"), last, last),
                                    attention: try transformer(m.scoped("attentions.0"), channels: last, level: c.blockOutChannels.count - 1,
                                                               heads: c.heads[c.heads.count - 1]))
        } else {
            midBlock = nil
        }

        let reversedChannels = Array(c.blockOutChannels.reversed())
        let reversedHeads = Array(c.heads.reversed())
        let reversedLayers = Array(c.layersPerBlock.reversed())
        var up: [UNetUpBlock] = []
        var previous = reversedChannels[0]
        for (level, type) in c.upBlockTypes.enumerated() {
            let output = reversedChannels[level]
            let skipInput = reversedChannels[min(level + 1, reversedChannels.count - 1)]
            let b = w.scoped("up_blocks.\(level)")
            let layers = reversedLayers[level] + 1
            let cross = type == UNetConfiguration.crossUp
            let originalLevel = c.blockOutChannels.count - 1 - level
            up.append(UNetUpBlock(
                resnets: try (0..<layers).map { i in
                    let skip = i == layers - 1 ? skipInput : output
                    return try resnet(b.scoped("resnets.\(i)"), (i == 0 ? previous : output) + skip, output)
                },
                attentions: cross ? try (0..<layers).map { try transformer(b.scoped("attentions.\($0)"), channels: output, level: originalLevel, heads: reversedHeads[level]) } : [],
                upsample: level < reversedChannels.count - 1 ? try Upsample2D(b.scoped("upsamplers.0"), channels: output) : nil))
            previous = output
        }
        upBlocks = up
        normOut = try GroupNorm(w, "conv_norm_out", groups: c.normGroups, channels: first, epsilon: c.normEpsilon)
        convOut = try Conv2dKernel(w, "conv_out", input: first, output: c.outChannels, kernel: 3)
    }

    /// Loads the `unet` (or other UNet) component of a model directory.
    public init(component: ModelComponent) throws {
        try self.init(configuration: UNetConfiguration(component.config), weights: component.weights())
    }

    /// Loads a UNet component with LoRA updates fused into its weights.
    init(component: ModelComponent, updates: [String: [LoRADelta]]) throws {
        try self.init(configuration: UNetConfiguration(component.config), weights: component.weights(), updates: updates)
    }

    /// The predicted noise (or v, or sample) for `sample` at `timesteps`.
    /// - Parameters:
    ///   - sample: [B, inChannels, H, W]
    ///   - timesteps: B values
    ///   - context: [B, tokens, crossAttentionWidth]
    ///   - classLabels: B labels when the model has a class embedding (noise levels)
    ///   - added: SDXL's pooled text embeddings and time ids, when the model takes them
    ///   - timestepCondition: [B, guidanceEmbeddingWidth], the guidance-scale embedding of a UNet
    ///     with `time_cond_proj_dim` (nil leaves it out, as diffusers does)
    ///   - precision: of the convolutions, products and unwatched attention
    ///   - controller: sees every attention layer's probabilities
    /// - Returns: [B, outChannels, H, W]
    public func callAsFunction(
        _ sample: Tensor, timesteps: [Float], context: Tensor, classLabels: [Int]? = nil, added: UNetAddedConditions? = nil,
        timestepCondition: Tensor? = nil, precision: Precision = .fp32, controller: AttentionController? = nil
    ) -> Tensor {
        let c = configuration
        precondition(sample.rank == 4 && sample.shape[1] == c.inChannels, "UNet expects [B, \(c.inChannels), H, W], got \(sample.shape)")
        precondition(timesteps.count == sample.shape[0] && context.shape[0] == sample.shape[0] && context.dim(-1) == c.crossAttentionWidth,
                     "UNet inputs disagree: sample \(sample.shape), \(timesteps.count) timesteps, context \(context.shape)")
        let router = AttentionRouter(controller)
        precondition(timestepCondition == nil || timestepCondition?.shape == [timesteps.count, c.guidanceEmbeddingWidth ?? -1],
                     "this UNet takes a timestep condition of [\(timesteps.count), \(c.guidanceEmbeddingWidth.map(String.init) ?? "none")]")
        var time = timeEmbedding(sinusoidalEmbedding(timesteps, width: c.blockOutChannels[0], flipSinToCos: c.flipSinToCos, shift: c.frequencyShift),
                                 condition: timestepCondition, precision: precision)
        if let classTable {
            precondition(classLabels?.count == timesteps.count, "this UNet needs one class label per sample")
            time = time + classTable(classLabels ?? [])
        } else if let classTimestepEmbedding {
            precondition(classLabels?.count == timesteps.count, "this UNet needs one class label per sample")
            time = time + classTimestepEmbedding(sinusoidalEmbedding((classLabels ?? []).map(Float.init), width: c.blockOutChannels[0],
                                                                     flipSinToCos: c.flipSinToCos, shift: c.frequencyShift), precision: precision)
        }
        if let addedEmbedding, let embedding = c.textTimeEmbedding {
            guard let added, added.textEmbeds.shape == [timesteps.count, embedding.pooledWidth] else {
                preconditionFailure("this UNet needs added conditions: [\(timesteps.count), \(embedding.pooledWidth)] text embeddings and [\(timesteps.count), 6] time ids")
            }
            time = time + addedEmbedding(added.embeddingInput(embedding, flipSinToCos: c.flipSinToCos, shift: c.frequencyShift), precision: precision)
        } else {
            precondition(added == nil, "this UNet takes no added conditions (SDXL's pooled text embeddings and time ids)")
        }
        let activatedTime = time.silu()
        // Channels-last inside (see ChannelsLast.swift).
        var x = (c.centerInputSample ? sample * 2 + -1 : sample).channelsLast()
        x = convIn(x, precision: precision)
        var skips = [x]
        for block in downBlocks {
            let (output, blockSkips) = block(x, time: activatedTime, context: context, router: router, precision: precision)
            x = output
            skips += blockSkips
        }
        if let midBlock { x = midBlock(x, time: activatedTime, context: context, router: router, precision: precision) }
        for block in upBlocks {
            x = block(x, skips: &skips, time: activatedTime, context: context, router: router, precision: precision)
        }
        return convOut(normOut.operand(x, activation: .silu, precision: precision), precision: precision).channelsFirst()
    }
}
