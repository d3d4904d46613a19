extension Tensor {
    /// Nearest-neighbour upsampling of channels-last [N, H, W, C] by an integer factor (2 in
    /// the UNets and the VAE).
    public func upsampledNearest(factor: Int = 2) -> Tensor {
        precondition(rank == 4, "upsampling needs [N, H, W, C], got \(shape)")
        return resizedNearest(height: shape[1] * factor, width: shape[2] * factor)
    }

    /// Nearest-neighbour resize of channels-last [N, H, W, C] to any size, as torch's
    /// `interpolate(mode="nearest")`: output pixel i reads input floor(i * in / out).
    public func resizedNearest(height: Int, width: Int) -> Tensor {
        precondition(rank == 4, "resizing needs [N, H, W, C], got \(shape)")
        let (items, h, w, channels) = (shape[0], shape[1], shape[2], shape[3])
        // Integer factors map exactly; others as torch's float scale.
        func sources(_ out: Int, _ input: Int) -> [Int] {
            if out % input == 0 { return (0..<out).map { $0 / (out / input) } }
            let scale = Float(input) / Float(out)
            return (0..<out).map { min(Int((Float($0) * scale).rounded(.down)), input - 1) }
        }
        let sourceRows = sources(height, h), sourceColumns = sources(width, w)
        var result = Tensor(uninitializedShape: [items, height, width, channels])
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(items * height, minimumChunk: 4) { rows in
                    for job in rows {
                        let (item, y) = (job / height, job % height)
                        let input = s + (item * h + sourceRows[y]) * w * channels, output = d + job * width * channels
                        for x in 0..<width { (output + x * channels).update(from: input + sourceColumns[x] * channels, count: channels) }
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
