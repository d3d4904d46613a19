/// Group and layer normalisation, with the statistics of torch (biased variance, eps inside the root).
public enum NormalizationActivation: Sendable {
    case none
    case silu
}

extension Tensor {
    /// GroupNorm over [N, C, ...]: each of `groups` channel groups of each item is normalised by
    /// its own mean and variance, then scaled by `weight[c]` and shifted by `bias[c]`.
    /// `activation` is fused into the same pass (ResNet blocks follow GroupNorm with SiLU).
    public func groupNorm(
        groups: Int, weight: Tensor?, bias: Tensor?, epsilon: Float,
        activation: NormalizationActivation = .none
    ) -> Tensor {
        precondition(rank >= 2, "groupNorm needs [N, C, ...], got \(shape)")
        let n = shape[0], channels = shape[1]
        precondition(channels % groups == 0, "\(channels) channels do not split into \(groups) groups")
        let spatial = count / (n * channels)
        let perGroup = channels / groups
        let groupSize = perGroup * spatial
        var result = Tensor(uninitializedShape: shape)
        let gamma = weight?.scalars, beta = bias?.scalars
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(n * groups) { range in
                    for job in range {
                        let start = job * groupSize
                        let (mean, variance) = Statistics.meanAndVariance(s + start, count: groupSize)
                        let inverse = 1 / (variance + epsilon).squareRoot()
                        let firstChannel = (job % groups) * perGroup
                        for c in 0..<perGroup {
                            let channel = firstChannel + c
                            let scale = inverse * (gamma?[channel] ?? 1)
                            let shift = (beta?[channel] ?? 0) - mean * scale
                            Statistics.affine(s + start + c * spatial, d + start + c * spatial,
                                              count: spatial, scale: scale, shift: shift, activation: activation)
                        }
                    }
                }
            }
        }
        return result
    }

    /// LayerNorm over the last dimension.
    public func layerNorm(weight: Tensor?, bias: Tensor?, epsilon: Float) -> Tensor {
        let width = dim(-1)
        let rows = count / width
        var result = Tensor(uninitializedShape: shape)
        let gamma = weight?.scalars ?? [Float](repeating: 1, count: width)
        let beta = bias?.scalars ?? [Float](repeating: 0, count: width)
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(rows, minimumChunk: max(1, 4096 / width)) { range in
                    for row in range {
                        let x = s + row * width, y = d + row * width
                        let (mean, variance) = Statistics.meanAndVariance(x, count: width)
                        let inverse = 1 / (variance + epsilon).squareRoot()
                        for i in 0..<width { y[i] = (x[i] - mean) * inverse * gamma[i] + beta[i] }
                    }
                }
            }
        }
        return result
    }
}

/// Reductions shared by the normalisation kernels.
enum Statistics {
    /// Mean and biased variance, two passes with 16 partial sums each (accurate in Float32
    /// for the group sizes of diffusion models, up to millions of elements).
    @inline(__always)
    static func meanAndVariance(_ x: UnsafePointer<Float>, count: Int) -> (Float, Float) {
        typealias V = SIMD16<Float>
        let raw = UnsafeRawPointer(x)
        var sum = V(repeating: 0)
        var i = 0
        while i + 16 <= count { sum += raw.loadUnaligned(fromByteOffset: i * 4, as: V.self); i += 16 }
        var total = Double(sum.sum())
        while i < count { total += Double(x[i]); i += 1 }
        let mean = Float(total / Double(count))
        var squares = V(repeating: 0)
        i = 0
        while i + 16 <= count {
            let d = raw.loadUnaligned(fromByteOffset: i * 4, as: V.self) - mean
            squares += d * d
            i += 16
        }
        var squareTotal = Double(squares.sum())
        while i < count { let d = x[i] - mean; squareTotal += Double(d * d); i += 1 }
        return (mean, Float(squareTotal / Double(count)))
    }

    /// y = act(x * scale + shift).
    @inline(__always)
    static func affine(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
        scale: Float, shift: Float, activation: NormalizationActivation
    ) {
        switch activation {
        case .none:
            for i in 0..<count { y[i] = x[i] * scale + shift }
        case .silu:
            for i in 0..<count { y[i] = VectorMath.silu(x[i] * scale + shift) }
        }
    }
}
