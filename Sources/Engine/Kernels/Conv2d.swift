/// Zero padding on each side of an image, in pixels.
public struct Padding2D: Sendable, Equatable {
    public var top: Int, bottom: Int, left: Int, right: Int

    public init(top: Int, bottom: Int, left: Int, right: Int) {
        (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
    }

    /// The same padding on every side.
    public static func uniform(_ p: Int) -> Padding2D { Padding2D(top: p, bottom: p, left: p, right: p) }
    public static let zero = Padding2D.uniform(0)
}

/// A 2-D convolution over NCHW tensors with weights in torch's [Cout, Cin, kH, kW] layout.
///
/// Three paths, all ending in large `sgemm` calls:
/// - 1x1, stride 1, no padding: one product per image, W[Cout, Cin] x X[Cin, H*W].
/// - stride 1, any kernel: the images are zero-padded once into [Cin, items, Hp, Wp]; for each
///   tap (dy, dx) that buffer read from offset dy*Wp + dx is, row after row, exactly the input
///   the tap needs for outputs computed over the padded width, so one product per tap
///   accumulates into C[Cout, items*Hp*Wp] with no im2col copy. The extra columns (Wp - Wo per
///   row, (kH - 1) rows between items) are dropped at the end. Packing several items into one
///   product keeps it wide at small resolutions (8x8 latents).
/// - otherwise (strided): im2col into [Cin*kH*kW, Ho*Wo], then one product.
public struct Conv2dKernel: Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelHeight: Int
    public let kernelWidth: Int
    public let stride: Int
    public let padding: Padding2D
    /// [Cout, Cin*kH*kW] (torch's layout) for the 1x1 and im2col paths, or [kH*kW, Cout, Cin]
    /// (one matrix per tap) for the stride-1 path; only one is kept, to hold weights once.
    let weight: Tensor
    let usesTaps: Bool
    let bias: Tensor?

    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Padding2D = .zero) {
        precondition(weight.rank == 4, "conv weight must be [Cout, Cin, kH, kW], got \(weight.shape)")
        precondition(stride >= 1, "stride must be positive")
        outputChannels = weight.shape[0]
        inputChannels = weight.shape[1]
        kernelHeight = weight.shape[2]
        kernelWidth = weight.shape[3]
        self.stride = stride
        self.padding = padding
        if let bias { precondition(bias.count == outputChannels, "conv bias of \(bias.count) for \(outputChannels) outputs") }
        self.bias = bias
        let taps = kernelHeight * kernelWidth
        usesTaps = stride == 1 && taps > 1
        if usesTaps {
            // [Cout, Cin, taps] -> [taps, Cout, Cin]
            self.weight = weight.reshaped([outputChannels * inputChannels, taps])
                .transposedLastTwo()
                .reshaped([taps, outputChannels, inputChannels])
        } else {
            self.weight = weight
        }
    }

    /// Output height and width for an input of the given size.
    public func outputSize(height: Int, width: Int) -> (Int, Int) {
        ((height + padding.top + padding.bottom - kernelHeight) / stride + 1,
         (width + padding.left + padding.right - kernelWidth) / stride + 1)
    }

    /// Multiply-adds x 2 for one call on `input` (for benchmarks).
    public func flops(for input: [Int]) -> Double {
        let (ho, wo) = outputSize(height: input[2], width: input[3])
        return 2 * Double(input[0]) * Double(outputChannels) * Double(ho * wo) * Double(inputChannels * kernelHeight * kernelWidth)
    }

    /// [N, Cin, H, W] -> [N, Cout, Ho, Wo]
    public func callAsFunction(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4 && input.shape[1] == inputChannels,
                     "conv expects [N, \(inputChannels), H, W], got \(input.shape)")
        let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3])
        let (ho, wo) = outputSize(height: h, width: w)
        precondition(ho > 0 && wo > 0, "conv input \(input.shape) is smaller than the kernel")
        var output = Tensor(uninitializedShape: [n, outputChannels, ho, wo])
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                let inputStride = inputChannels * h * w, outputStride = outputChannels * ho * wo
                if usesTaps {
                    // Items per product: keep the padded copy within ~64 MiB.
                    let paddedBytes = inputChannels * (h + padding.top + padding.bottom) * (w + padding.left + padding.right) * 4
                    let group = max(1, min(n, (64 << 20) / max(paddedBytes, 1)))
                    var first = 0
                    while first < n {
                        let items = min(group, n - first)
                        shiftedTaps(x.baseAddress! + first * inputStride, y.baseAddress! + first * outputStride,
                                    items: items, height: h, width: w, outputHeight: ho, outputWidth: wo)
                        first += items
                    }
                    return
                }
                for item in 0..<n {
                    let source = x.baseAddress! + item * inputStride
                    let destination = y.baseAddress! + item * outputStride
                    if kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == .zero {
                        pointwise(source, destination, pixels: h * w)
                    } else {
                        im2col(source, destination, height: h, width: w, outputHeight: ho, outputWidth: wo)
                    }
                }
            }
        }
        return output
    }

    private func pointwise(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, pixels: Int) {
        weight.withUnsafeBufferPointer { w in
            BLAS.parallelGEMM(m: outputChannels, n: pixels, k: inputChannels,
                      a: w.baseAddress!, lda: inputChannels, b: x, ldb: pixels, c: y, ldc: pixels)
        }
        addBias(y, pixels: pixels)
    }

    /// Output rows per product for one large image: bounds the padded copy and the
    /// accumulator to ~32 MiB each (a 512x512 VAE layer otherwise needs 270 MB of temporaries).
    private static let bandBytes = 32 << 20

    private func shiftedTaps(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, items: Int,
        height h: Int, width w: Int, outputHeight ho: Int, outputWidth wo: Int
    ) {
        let wp = w + padding.left + padding.right
        let rowBytes = max(inputChannels, outputChannels) * wp * MemoryLayout<Float>.stride
        let band = items == 1 ? max(1, min(ho, Self.bandBytes / rowBytes)) : ho
        var first = 0
        while first < ho {
            let rows = min(band, ho - first)
            shiftedTaps(x, y, items: items, height: h, width: w, outputRows: first..<(first + rows), outputHeight: ho, outputWidth: wo)
            first += rows
        }
    }

    /// Output rows `outputRows` of every item: the padded input rows they read, one product per
    /// tap, then the valid columns copied out with the bias.
    private func shiftedTaps(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, items: Int,
        height h: Int, width w: Int, outputRows: Range<Int>, outputHeight ho: Int, outputWidth wo: Int
    ) {
        let wp = w + padding.left + padding.right
        let bandRows = outputRows.count + kernelHeight - 1
        let plane = bandRows * wp
        // Columns from the first item's first output row to the last item's last.
        let columns = (items - 1) * plane + outputRows.count * wp
        // The last tap reads kW - 1 elements past the final plane.
        let padded = ZeroPadded(x, channels: inputChannels, items: items, height: h, width: w, padding: padding,
                                paddedRows: outputRows.lowerBound..<(outputRows.lowerBound + bandRows), slack: kernelWidth)
        defer { padded.deallocate() }
        let accumulator = UnsafeMutablePointer<Float>.allocate(capacity: outputChannels * columns)
        defer { accumulator.deallocate() }
        weight.withUnsafeBufferPointer { taps in
            for dy in 0..<kernelHeight {
                for dx in 0..<kernelWidth {
                    let tap = dy * kernelWidth + dx
                    BLAS.parallelGEMM(m: outputChannels, n: columns, k: inputChannels,
                              a: taps.baseAddress! + tap * outputChannels * inputChannels, lda: inputChannels,
                              b: padded.pointer + dy * wp + dx, ldb: items * plane,
                              beta: tap == 0 ? 0 : 1,
                              c: accumulator, ldc: columns)
                }
            }
        }
        // Keep the first Wo of every Wp columns of each item's rows, adding the bias.
        let biasValues = bias?.scalars
        parallelFor(items * outputChannels, minimumChunk: 8) { jobs in
            for job in jobs {
                let (item, c) = (job / outputChannels, job % outputChannels)
                let b = biasValues?[c] ?? 0
                for (offset, row) in outputRows.enumerated() {
                    let from = accumulator + c * columns + item * plane + offset * wp
                    let to = y + ((item * outputChannels + c) * ho + row) * wo
                    for i in 0..<wo { to[i] = from[i] + b }
                }
            }
        }
    }

    private func im2col(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
        height h: Int, width w: Int, outputHeight ho: Int, outputWidth wo: Int
    ) {
        let wp = w + padding.left + padding.right, hp = h + padding.top + padding.bottom
        let padded = ZeroPadded(x, channels: inputChannels, items: 1, height: h, width: w, padding: padding,
                                paddedRows: 0..<(h + padding.top + padding.bottom), slack: 0)
        defer { padded.deallocate() }
        let taps = kernelHeight * kernelWidth
        let rows = inputChannels * taps, columns = ho * wo
        let matrix = UnsafeMutablePointer<Float>.allocate(capacity: rows * columns)
        defer { matrix.deallocate() }
        let (kw, s) = (kernelWidth, stride)
        parallelFor(rows, minimumChunk: 4) { range in
            for row in range {
                let channel = row / taps, dy = (row % taps) / kw, dx = row % kw
                let plane = padded.pointer + channel * hp * wp
                let out = matrix + row * columns
                for oy in 0..<ho {
                    let line = plane + (oy * s + dy) * wp + dx
                    for ox in 0..<wo { out[oy * wo + ox] = line[ox * s] }
                }
            }
        }
        weight.withUnsafeBufferPointer { wt in
            BLAS.parallelGEMM(m: outputChannels, n: columns, k: rows,
                      a: wt.baseAddress!, lda: rows, b: matrix, ldb: columns, c: y, ldc: columns)
        }
        addBias(y, pixels: columns)
    }

    private func addBias(_ y: UnsafeMutablePointer<Float>, pixels: Int) {
        guard let biasValues = bias?.scalars else { return }
        parallelFor(outputChannels, minimumChunk: 8) { channels in
            for c in channels {
                let row = y + c * pixels, b = biasValues[c]
                for i in 0..<pixels { row[i] += b }
            }
        }
    }
}

/// Rows `paddedRows` of the zero-padded copy of `items` [C, H, W] images, laid out
/// [C, items, rows, Wp], with `slack` extra zeros at the end.
struct ZeroPadded {
    let pointer: UnsafeMutablePointer<Float>

    init(_ x: UnsafePointer<Float>, channels: Int, items: Int, height h: Int, width w: Int, padding: Padding2D,
         paddedRows: Range<Int>, slack: Int) {
        let wp = w + padding.left + padding.right, rows = paddedRows.count
        let total = channels * items * rows * wp + slack
        let p = UnsafeMutablePointer<Float>.allocate(capacity: total)
        pointer = p
        parallelFor(channels * items, minimumChunk: 4) { range in
            for job in range {
                let (c, item) = (job / items, job % items)
                let plane = p + job * rows * wp
                plane.initialize(repeating: 0, count: rows * wp)
                let source = x + (item * channels + c) * h * w
                for (offset, paddedRow) in paddedRows.enumerated() {
                    let row = paddedRow - padding.top
                    guard row >= 0 && row < h else { continue }
                    (plane + offset * wp + padding.left).update(from: source + row * w, count: w)
                }
            }
        }
        (p + channels * items * rows * wp).initialize(repeating: 0, count: slack)
    }

    func deallocate() { pointer.deallocate() }
}
