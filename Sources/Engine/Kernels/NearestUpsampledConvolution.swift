import EditContract

/// A 3x3 convolution (stride 1, padding 1) of an image upsampled to twice its size by nearest
/// neighbours, computed on the image itself: each output pixel of a nearest 2x upsample has one
/// of four phases (row and column parity), and for each phase the 3x3 kernel reads only 2x2
/// distinct input pixels, so its taps that land on the same input pixel can be summed
/// beforehand. One 2x2 convolution with four kernels per output channel (padding 1, [H+1, W+1]
/// outputs) computes all four phases: 16 products per input pixel and channel pair instead of
/// the 36 of convolving the upsampled image, and the upsampled image (4x the input) is never made.
///
/// Phase (py, px) of output pixel (2i + py, 2j + px) is output (i + py, j + px) of the 2x2
/// convolution, whose kernel rows take 3x3 rows {0} and {1, 2} for py = 0 (input rows i-1, i) and
/// {0, 1} and {2} for py = 1 (input rows i, i+1); columns likewise.
struct NearestUpsampledConvolution: Sendable {
    /// [4 * Cout, Cin, 2, 2]: phase g = 2 * py + px is output channels g * Cout ..< (g + 1) * Cout.
    let phases: Conv2dKernel

    /// Cout
    var channels: Int { phases.outputChannels / 4 }

    /// `kernel` must be a stride-1 3x3 convolution with padding 1.
    init(_ kernel: Conv2dKernel) {
        precondition(kernel.kernelHeight == 3 && kernel.kernelWidth == 3 && kernel.stride == 1 && kernel.padding == .uniform(1),
                     "a nearest-upsampled convolution is made from a 3x3, stride-1, padding-1 convolution")
        let (outputs, inputs) = (kernel.outputChannels, kernel.inputChannels)
        let source = kernel.weights.source.derived(shape: [4 * outputs, inputs, 2, 2]) { Self.phaseWeights($0) }
        let bias = kernel.bias.map { Tensor(shape: [4 * outputs], values: Array(repeating: $0.scalars, count: 4).flatMap { $0 }) }
        phases = Conv2dKernel(source: source, bias: bias, stride: 1, padding: .uniform(1))
    }

    /// The 3x3 taps each row (or column) of a phase's 2x2 kernel sums, by parity and kernel row.
    private static let taps: [[[Int]]] = [[[0], [1, 2]], [[0, 1], [2]]]

    /// [Cout, Cin, 3, 3] -> [4 * Cout, Cin, 2, 2]
    static func phaseWeights(_ weights: Tensor) -> Tensor {
        let (outputs, inputs) = (weights.shape[0], weights.shape[1])
        var result = Tensor(uninitializedShape: [4 * outputs, inputs, 2, 2])
        weights.withUnsafeBufferPointer { w in
            result.withUnsafeMutableBufferPointer { r in
                for phase in 0..<4 {
                    let (rowTaps, columnTaps) = (taps[phase / 2], taps[phase % 2])
                    for pair in 0..<(outputs * inputs) {
                        let kernel = w.baseAddress! + pair * 9
                        let target = r.baseAddress! + (phase * outputs * inputs + pair) * 4
                        for a in 0..<2 {
                            for b in 0..<2 {
                                var sum: Float = 0
                                for ky in rowTaps[a] { for kx in columnTaps[b] { sum += kernel[ky * 3 + kx] } }
                                target[a * 2 + b] = sum
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// [N, H, W, Cin] -> [N, 2H, 2W, Cout]: conv3x3(nearest2x(x)).
    func callAsFunction(_ x: Tensor, precision: Precision) -> Tensor {
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let c = channels
        var output = Tensor(uninitializedShape: [n, 2 * h, 2 * w, c])
        output.withUnsafeMutableBufferPointer { destination in
            let out = destination.baseAddress!
            // A band of the 2x2 convolution's rows u (each [W + 1, 4, C]) scatters phase (py, px)
            // of its column v to output pixel (2u - py, 2v - px), where that lies in the image.
            phases.forEachBand(ProductOperand(x), precision: precision) { item, rows, values in
                let image = out + item * 4 * h * w * c
                for u in rows {
                    let row = values + (u - rows.lowerBound) * (w + 1) * 4 * c
                    for py in 0..<2 {
                        let y = 2 * u - py
                        guard y >= 0 && y < 2 * h else { continue }
                        for v in 0...w {
                            for px in 0..<2 {
                                let xOut = 2 * v - px
                                guard xOut >= 0 && xOut < 2 * w else { continue }
                                (image + (y * 2 * w + xOut) * c).update(from: row + (v * 4 + py * 2 + px) * c, count: c)
                            }
                        }
                    }
                }
            }
        }
        return output
    }
}
