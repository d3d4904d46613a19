import EditContract
/// diffusers' ResnetBlock2D: GroupNorm, SiLU, 3x3 conv, plus the projected time embedding;
/// GroupNorm, SiLU, 3x3 conv; added to the input (through a 1x1 conv when channels change).
/// Channels-last.
struct ResnetBlock2D: Sendable {
    let norm1, norm2: GroupNorm
    let conv1, conv2: Conv2dKernel
    let timeProjection: Linear?
    let shortcut: Conv2dKernel?

    init(_ w: Weights, input: Int, output: Int, timeChannels: Int?, groups: Int, epsilon: Float) throws {
        norm1 = try GroupNorm(w, "norm1", groups: groups, channels: input, epsilon: epsilon)
        conv1 = try Conv2dKernel(w, "conv1", input: input, output: output, kernel: 3)
        timeProjection = try timeChannels.map { try Linear(w, "time_emb_proj", input: $0, output: output) }
        norm2 = try GroupNorm(w, "norm2", groups: groups, channels: output, epsilon: epsilon)
        conv2 = try Conv2dKernel(w, "conv2", input: output, output: output, kernel: 3)
        shortcut = input != output ? try Conv2dKernel(w, "conv_shortcut", input: input, output: output, kernel: 1) : nil
    }

    /// x [N, H, W, Cin], time embedding [N, T] after SiLU -> [N, H, W, Cout]
    func callAsFunction(_ x: Tensor, activatedTime: Tensor?, precision: Precision) -> Tensor {
        var h = conv1(norm1.operand(x, activation: .silu, precision: precision), precision: precision)
        if let timeProjection, let activatedTime {
            h.addItemChannelBias(timeProjection(activatedTime, precision: precision))
        }
        // The second convolution accumulates onto the shortcut.
        let residual = shortcut?(x, precision: precision) ?? x
        return conv2.adding(norm2.operand(h, activation: .silu, precision: precision), to: residual, precision: precision)
    }
}

/// A stride-2 3x3 convolution (`downsamplers.0.conv`). `padding` nil means the VAE encoder's
/// asymmetric padding: one row and column of zeros after, none before.
struct Downsample2D: Sendable {
    let conv: Conv2dKernel

    init(_ w: Weights, channels: Int, symmetricPadding: Bool) throws {
        conv = try Conv2dKernel(w, "conv", input: channels, output: channels, kernel: 3, stride: 2,
                                padding: symmetricPadding ? .uniform(1) : Padding2D(top: 0, bottom: 1, left: 0, right: 1))
    }

    /// [N, H, W, C] -> [N, H/2, W/2, C]
    func callAsFunction(_ x: Tensor, precision: Precision) -> Tensor { conv(x, precision: precision) }
}

/// Nearest-neighbour upsampling (to twice the size, or to a given size) then a 3x3 convolution
/// (`upsamplers.0.conv`). Twice the size runs as `NearestUpsampledConvolution` (fewer than half
/// the products, no upsampled copy); other sizes upsample first.
struct Upsample2D: Sendable {
    let conv: Conv2dKernel
    let doubling: NearestUpsampledConvolution

    init(_ w: Weights, channels: Int) throws {
        self.init(conv: try Conv2dKernel(w, "conv", input: channels, output: channels, kernel: 3))
    }

    init(conv: Conv2dKernel) {
        self.conv = conv
        doubling = NearestUpsampledConvolution(conv)
    }

    /// [N, H, W, C] -> [N, 2H, 2W, C] (or `size`)
    func callAsFunction(_ x: Tensor, size: (Int, Int)? = nil, precision: Precision) -> Tensor {
        let (h, w) = size ?? (2 * x.shape[1], 2 * x.shape[2])
        if h == 2 * x.shape[1] && w == 2 * x.shape[2] { return doubling(x, precision: precision) }
        return conv(x.resizedNearestOperand(height: h, width: w, precision: precision), precision: precision)
    }
}
