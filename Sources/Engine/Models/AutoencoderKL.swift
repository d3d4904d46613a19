import EditContract
import Foundation

/// Hyper-parameters of an AutoencoderKL (the Stable Diffusion VAE), from its config.json.
public struct AutoencoderConfiguration: Sendable {
    let inChannels: Int
    let outChannels: Int
    public let latentChannels: Int
    public let blockOutChannels: [Int]
    let layersPerBlock: Int
    let normGroups: Int
    /// Latents are multiplied by this after encoding and divided by it before decoding.
    public let scalingFactor: Float
    let quantConvolutions: Bool
    let midAttention: Bool

    init(_ config: ModelConfig) throws {
        inChannels = try config.size("in_channels", default: 3)
        outChannels = try config.size("out_channels", default: 3)
        latentChannels = try config.size("latent_channels", default: 4)
        blockOutChannels = try config.sizes("block_out_channels", default: [64])
        layersPerBlock = try config.size("layers_per_block", default: 1)
        normGroups = try config.size("norm_num_groups", default: 32)
        for channels in blockOutChannels where channels % normGroups != 0 {
            throw ModelDirectoryError(path: config.file.path, problem: "has block_out_channels \(blockOutChannels), not all divisible by norm_num_groups = \(normGroups)",
                                      fix: "correct the configuration (the original model's values)")
        }
        scalingFactor = Float(try config.double("scaling_factor", default: 0.18215))
        quantConvolutions = try config.bool("use_quant_conv", default: true)
        if try config.bool("use_post_quant_conv", default: quantConvolutions) != quantConvolutions {
            throw ModelDirectoryError(path: config.file.path, problem: "sets use_post_quant_conv unlike use_quant_conv",
                                      fix: "use a VAE with both quantisation convolutions or neither")
        }
        midAttention = try config.bool("mid_block_add_attention", default: true)
        for type in try config.strings("down_block_types", default: ["DownEncoderBlock2D"]) where type != "DownEncoderBlock2D" {
            throw ModelDirectoryError(path: config.file.path, problem: "has a down block of type \(type)", fix: "use an AutoencoderKL with DownEncoderBlock2D blocks")
        }
        for type in try config.strings("up_block_types", default: ["UpDecoderBlock2D"]) where type != "UpDecoderBlock2D" {
            throw ModelDirectoryError(path: config.file.path, problem: "has an up block of type \(type)", fix: "use an AutoencoderKL with UpDecoderBlock2D blocks")
        }
        if let shift = config.values["shift_factor"]?.doubleValue, shift != 0 {
            throw ModelDirectoryError(path: config.file.path, problem: "sets shift_factor \(shift)", fix: "use a Stable Diffusion 1.x/2.x VAE (no latent shift)")
        }
    }

    /// How many times smaller the latent is than the image, per side.
    var downscale: Int { 1 << (blockOutChannels.count - 1) }
}

/// The VAE's single-head self-attention over pixels (mid blocks): GroupNorm, biased q/k/v and
/// output projections, residual. Reads both current (`to_q`...) and legacy (`query`...) names.
struct PixelAttention: Sendable {
    let norm: GroupNorm
    let query, key, value, output: Linear

    init(_ w: Weights, channels: Int, groups: Int) throws {
        norm = try GroupNorm(w, "group_norm", groups: groups, channels: channels, epsilon: 1e-6)
        let legacy = w.contains("query.weight")
        func projection(_ current: String, _ old: String) throws -> Linear {
            let name = legacy ? old : current
            // Legacy checkpoints may store these as 1x1 convolutions [C, C, 1, 1].
            let convolution = w.shape(of: name + ".weight") == [channels, channels, 1, 1]
            let source = try w.source(name + ".weight", shape: convolution ? [channels, channels, 1, 1] : [channels, channels])
            return Linear(source: source.reshaped([channels, channels]), bias: try w(name + ".bias", shape: [channels]))
        }
        query = try projection("to_q", "query")
        key = try projection("to_k", "key")
        value = try projection("to_v", "value")
        output = try projection("to_out.0", "proj_attn")
    }

    /// x [B, H, W, C] -> [B, H, W, C]
    func callAsFunction(_ x: Tensor, precision: Precision) -> Tensor {
        let (batch, height, width, channels) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let h = norm(x).reshaped([batch, height * width, channels])  // the pixels are the tokens
        let attended = Attention.scaledDotProduct(query: query(h, precision: precision), key: key(h, precision: precision),
                                                  value: value(h, precision: precision), heads: 1, precision: precision)
        return output.adding(attended, to: x.reshaped([batch, height * width, channels]), precision: precision).reshaped(x.shape)
    }
}

/// The VAE's middle: ResNet, attention, ResNet (no time embedding).
struct AutoencoderMidBlock: Sendable {
    let first, second: ResnetBlock2D
    let attention: PixelAttention?

    init(_ w: Weights, channels: Int, groups: Int, attention: Bool) throws {
        first = try ResnetBlock2D(w.scoped("resnets.0"), input: channels, output: channels, timeChannels: nil, groups: groups, epsilon: 1e-6)
        second = try ResnetBlock2D(w.scoped("resnets.1"), input: channels, output: channels, timeChannels: nil, groups: groups, epsilon: 1e-6)
        self.attention = attention ? try PixelAttention(w.scoped("attentions.0"), channels: channels, groups: groups) : nil
    }

    func callAsFunction(_ x: Tensor, precision: Precision) -> Tensor {
        var h = first(x, activatedTime: nil, precision: precision)
        if let attention { h = attention(h, precision: precision) }
        return second(h, activatedTime: nil, precision: precision)
    }
}

/// diffusers' AutoencoderKL: images to latent distributions and latents to images.
public struct AutoencoderKL: Sendable {
    public let configuration: AutoencoderConfiguration
    // Encoder
    let encoderIn: Conv2dKernel
    let encoderBlocks: [(resnets: [ResnetBlock2D], downsample: Downsample2D?)]
    let encoderMid: AutoencoderMidBlock
    let encoderNorm: GroupNorm
    let encoderOut: Conv2dKernel
    let quant: Conv2dKernel?
    // Decoder
    let postQuant: Conv2dKernel?
    let decoderIn: Conv2dKernel
    let decoderMid: AutoencoderMidBlock
    let decoderBlocks: [(resnets: [ResnetBlock2D], upsample: Upsample2D?)]
    let decoderNorm: GroupNorm
    let decoderOut: Conv2dKernel

    init(configuration c: AutoencoderConfiguration, weights file: SafeTensorsFile) throws {
        configuration = c
        let w = Weights(file)
        let channels = c.blockOutChannels, groups = c.normGroups, latent = c.latentChannels
        func resnet(_ w: Weights, _ input: Int, _ output: Int) throws -> ResnetBlock2D {
            try ResnetBlock2D(w, input: input, output: output, timeChannels: nil, groups: groups, epsilon: 1e-6)
        }
        let e = w.scoped("encoder")
        encoderIn = try Conv2dKernel(e, "conv_in", input: c.inChannels, output: channels[0], kernel: 3)
        var output = channels[0]
        encoderBlocks = try channels.indices.map { level in
            let input = output
            output = channels[level]
            let b = e.scoped("down_blocks.\(level)")
            return (resnets: try (0..<c.layersPerBlock).map { try resnet(b.scoped("resnets.\($0)"), $0 == 0 ? input : output, output) },
                    downsample: level < channels.count - 1 ? try Downsample2D(b.scoped("downsamplers.0"), channels: output, symmetricPadding: false) : nil)
        }
        let last = channels[channels.count - 1]
        encoderMid = try AutoencoderMidBlock(e.scoped("mid_block"), channels: last, groups: groups, attention: c.midAttention)
        encoderNorm = try GroupNorm(e, "conv_norm_out", groups: groups, channels: last, epsilon: 1e-6)
        encoderOut = try Conv2dKernel(e, "conv_out", input: last, output: 2 * latent, kernel: 3)
        quant = c.quantConvolutions ? try Conv2dKernel(w, "quant_conv", input: 2 * latent, output: 2 * latent, kernel: 1) : nil

        postQuant = c.quantConvolutions ? try Conv2dKernel(w, "post_quant_conv", input: latent, output: latent, kernel: 1) : nil
        let d = w.scoped("decoder")
        decoderIn = try Conv2dKernel(d, "conv_in", input: latent, output: last, kernel: 3)
        decoderMid = try AutoencoderMidBlock(d.scoped("mid_block"), channels: last, groups: groups, attention: c.midAttention)
        let reversed = Array(channels.reversed())
        var previous = reversed[0]
        decoderBlocks = try reversed.indices.map { level in
            let output = reversed[level], input = previous
            previous = output
            let b = d.scoped("up_blocks.\(level)")
            return (resnets: try (0...c.layersPerBlock).map { try resnet(b.scoped("resnets.\($0)"), $0 == 0 ? input : output, output) },
                    upsample: level < reversed.count - 1 ? try Upsample2D(b.scoped("upsamplers.0"), channels: output) : nil)
        }
        decoderNorm = try GroupNorm(d, "conv_norm_out", groups: groups, channels: channels[0], epsilon: 1e-6)
        decoderOut = try Conv2dKernel(d, "conv_out", input: channels[0], output: c.outChannels, kernel: 3)
    }

    public init(component: ModelComponent) throws {
        try self.init(configuration: AutoencoderConfiguration(component.config), weights: component.weights())
    }

    /// Images [B, 3, H, W] in [-1, 1] -> the latent distribution's mean and standard deviation,
    /// each [B, latent, H/f, W/f] (not yet multiplied by the scaling factor).
    func encode(_ image: Tensor, precision: Precision = .fp32) -> (mean: Tensor, standardDeviation: Tensor) {
        LargeBlockCache.keepingFreedBlocks { encoded(image, precision: precision) }
    }

    private func encoded(_ image: Tensor, precision: Precision) -> (mean: Tensor, standardDeviation: Tensor) {
        var x = encoderIn(image.channelsLast(), precision: precision)
        for block in encoderBlocks {
            for resnet in block.resnets { x = resnet(x, activatedTime: nil, precision: precision) }
            if let downsample = block.downsample { x = downsample(x, precision: precision) }
        }
        x = encoderOut(encoderNorm.operand(encoderMid(x, precision: precision), activation: .silu, precision: precision), precision: precision)
        if let quant { x = quant(x, precision: precision) }
        let halves = x.channelsFirst().chunked(2, axis: 1)
        let deviation = halves[1].mapElements { Foundation.exp(0.5 * min(max($0, -30), 20)) }
        return (halves[0], deviation)
    }

    /// Latents [B, latent, h, w] (already divided by the scaling factor) -> images [B, 3, h*f, w*f].
    public func decode(_ latents: Tensor, precision: Precision = .fp32) -> Tensor {
        // The decoder's large activations are kept for reuse within it, not through what follows.
        LargeBlockCache.keepingFreedBlocks { decoded(latents, precision: precision) }
    }

    private func decoded(_ latents: Tensor, precision: Precision) -> Tensor {
        var x = latents.channelsLast()
        if let postQuant { x = postQuant(x, precision: precision) }
        x = decoderMid(decoderIn(x, precision: precision), precision: precision)
        for block in decoderBlocks {
            for resnet in block.resnets { x = resnet(x, activatedTime: nil, precision: precision) }
            if let upsample = block.upsample { x = upsample(x, precision: precision) }
        }
        return decoderOut(decoderNorm.operand(x, activation: .silu, precision: precision), precision: precision).channelsFirst()
    }
}
