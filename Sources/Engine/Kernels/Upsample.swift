extension Tensor {
    /// Nearest-neighbour upsampling of [N, C, H, W] by an integer factor (2 in the UNets).
    public func upsampledNearest(factor: Int = 2) -> Tensor {
        precondition(rank == 4, "upsampling needs [N, C, H, W], got \(shape)")
        let planes = shape[0] * shape[1], h = shape[2], w = shape[3]
        let outW = w * factor
        var result = Tensor(uninitializedShape: [shape[0], shape[1], h * factor, outW])
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(planes * h, minimumChunk: 16) { rows in
                    for row in rows {
                        let input = s + row * w
                        let output = d + row * factor * outW
                        for x in 0..<w {
                            let value = input[x]
                            for f in 0..<factor { output[x * factor + f] = value }
                        }
                        for f in 1..<factor { (output + f * outW).update(from: output, count: outW) }
                    }
                }
            }
        }
        return result
    }
}

extension Tensor {
    /// Nearest-neighbour resize of [N, C, H, W] to any size, as torch's `interpolate(mode="nearest")`:
    /// output pixel i reads input floor(i * in / out).
    public func resizedNearest(height: Int, width: Int) -> Tensor {
        precondition(rank == 4, "resizing needs [N, C, H, W], got \(shape)")
        let (h, w) = (shape[2], shape[3])
        if height == 2 * h && width == 2 * w { return upsampledNearest() }
        let planes = shape[0] * shape[1]
        let rowScale = Float(h) / Float(height), columnScale = Float(w) / Float(width)
        let sourceColumns = (0..<width).map { min(Int((Float($0) * columnScale).rounded(.down)), w - 1) }
        var result = Tensor(uninitializedShape: [shape[0], shape[1], height, width])
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(planes * height, minimumChunk: 16) { rows in
                    for job in rows {
                        let (plane, y) = (job / height, job % height)
                        let sourceRow = min(Int((Float(y) * rowScale).rounded(.down)), h - 1)
                        let input = s + (plane * h + sourceRow) * w, output = d + job * width
                        for x in 0..<width { output[x] = input[sourceColumns[x]] }
                    }
                }
            }
        }
        return result
    }
}

extension Tensor {
    /// Bilinear resize of [N, C, H, W], as torch's `interpolate(mode="bilinear",
    /// align_corners=False)` without antialiasing: source coordinate (i + 0.5) * in/out - 0.5,
    /// clamped at 0, blending the two neighbours on each axis.
    public func resizedBilinear(height: Int, width: Int) -> Tensor {
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
