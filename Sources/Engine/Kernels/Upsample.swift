import EditContract

extension Tensor {
    /// Nearest-neighbour upsampling of channels-last [N, H, W, C] by an integer factor (2 in
    /// the UNets and the VAE).
    func upsampledNearest(factor: Int = 2) -> Tensor {
        precondition(rank == 4, "upsampling needs [N, H, W, C], got \(shape)")
        return resizedNearest(height: shape[1] * factor, width: shape[2] * factor)
    }

    /// Nearest-neighbour resize of channels-last [N, H, W, C] to any size, as torch's
    /// `interpolate(mode="nearest")`: output pixel i reads input floor(i * in / out).
    func resizedNearest(height: Int, width: Int) -> Tensor {
        let map = nearestSources(height: height, width: width)
        let (items, channels) = (shape[0], shape[3])
        var result = Tensor(uninitializedShape: [items, height, width, channels])
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(items * height, minimumChunk: 4) { rows in
                    for job in rows {
                        let output = d + job * width * channels
                        for x in 0..<width { (output + x * channels).update(from: s + map.offset(row: job, column: x), count: channels) }
                    }
                }
            }
        }
        return result
    }

    /// The same resize as the input of a product at `precision`: in bf16 written as bfloat16
    /// directly, so the (four times larger) float32 result is never made.
    func resizedNearestOperand(height: Int, width: Int, precision: Precision) -> ProductOperand {
        guard precision == .bf16 else { return ProductOperand(resizedNearest(height: height, width: width)) }
        let map = nearestSources(height: height, width: width)
        let (items, channels) = (shape[0], shape[3])
        return withUnsafeBufferPointer { src in
            let s = src.baseAddress!
            return ProductOperand(bfloat16Shape: [items, height, width, channels], rows: items * height) { rows, destination in
                for job in rows {
                    let output = destination + job * width * channels
                    for x in 0..<width {
                        let input = s + map.offset(row: job, column: x), pixel = output + x * channels
                        BFloat16.convertRow(input, into: pixel, count: channels)
                    }
                }
            }
        }
    }

    /// Where each output pixel of a nearest resize of channels-last [N, H, W, C] reads.
    private func nearestSources(height: Int, width: Int) -> NearestSources {
        precondition(rank == 4, "resizing needs [N, H, W, C], got \(shape)")
        let (h, w, channels) = (shape[1], shape[2], shape[3])
        // Integer factors map exactly; others as torch's float scale.
        func sources(_ out: Int, _ input: Int) -> [Int] {
            if out % input == 0 { return (0..<out).map { $0 / (out / input) } }
            let scale = Float(input) / Float(out)
            return (0..<out).map { min(Int((Float($0) * scale).rounded(.down)), input - 1) }
        }
        return NearestSources(rows: sources(height, h), columns: sources(width, w), inputHeight: h, inputWidth: w, channels: channels)
    }
}

/// Output pixel -> input element offset of a nearest resize (torch's `interpolate(mode="nearest")`:
/// output pixel i reads input floor(i * in / out)).
private struct NearestSources: Sendable {
    let rows: [Int], columns: [Int]
    let inputHeight: Int, inputWidth: Int, channels: Int

    /// `row` counts output rows over all items.
    @inline(__always)
    func offset(row: Int, column: Int) -> Int {
        let (item, y) = (row / rows.count, row % rows.count)
        return ((item * inputHeight + rows[y]) * inputWidth + columns[column]) * channels
    }
}

extension Tensor {
    /// Bilinear resize of [N, C, H, W], as torch's `interpolate(mode="bilinear",
    /// align_corners=False)` without antialiasing: source coordinate (i + 0.5) * in/out - 0.5,
    /// clamped at 0, blending the two neighbours on each axis.
    func resizedBilinear(height: Int, width: Int) -> Tensor {
        precondition(rank == 4, "resizing needs [N, C, H, W], got \(shape)")
        let (h, w) = (shape[2], shape[3])
        func taps(_ out: Int, _ input: Int) -> [(Int, Int, Float)] {
            let scale = Float(input) / Float(out)
            return (0..<out).map { i in
                let source = max((Float(i) + 0.5) * scale - 0.5, 0)
                let low = min(Int(source), input - 1)
                let high = min(low + 1, input - 1)
                return (low, high, source - Float(low))
            }
        }
        let rows = taps(height, h), columns = taps(width, w)
        let planes = shape[0] * shape[1]
        var result = Tensor(uninitializedShape: [shape[0], shape[1], height, width])
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(planes * height, minimumChunk: 16) { jobs in
                    for job in jobs {
                        let (plane, y) = (job / height, job % height)
                        let (top, bottom, fy) = rows[y]
                        let upper = s + (plane * h + top) * w, lower = s + (plane * h + bottom) * w
                        let output = d + job * width
                        for x in 0..<width {
                            let (left, right, fx) = columns[x]
                            let a = upper[left] + (upper[right] - upper[left]) * fx
                            let b = lower[left] + (lower[right] - lower[left]) * fx
                            output[x] = a + (b - a) * fy
                        }
                    }
                }
            }
        }
        return result
    }
}
