import EditContract
/// Group and layer normalisation, with the statistics of torch (biased variance, eps inside the root).
enum NormalizationActivation: Sendable {
    case none
    case silu
}

extension Tensor {
    /// GroupNorm over channels-last [N, ..., C]: each of `groups` runs of consecutive channels
    /// of each item is normalised by its own mean and variance over all positions, then scaled
    /// by `weight[c]` and shifted by `bias[c]`. `activation` is fused into the same pass (ResNet
    /// blocks follow GroupNorm with SiLU).
    ///
    /// The statistics are summed over fixed runs of positions and combined in a fixed order, so
    /// the result does not depend on the thread count.
    func groupNorm(
        groups: Int, weight: Tensor?, bias: Tensor?, epsilon: Float,
        activation: NormalizationActivation = .none
    ) -> Tensor {
        let (scales, shifts) = groupNormCoefficients(groups: groups, weight: weight, bias: bias, epsilon: epsilon)
        let channels = shape[rank - 1], positions = count / (shape[0] * channels)
        var result = Tensor(uninitializedShape: shape)
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                scales.withUnsafeBufferPointer { scale in
                    shifts.withUnsafeBufferPointer { shift in
                        let (scale, shift) = (scale.baseAddress!, shift.baseAddress!)
                        parallelFor(shape[0] * positions, minimumChunk: max(1, 4096 / channels)) { rows in
                            for row in rows {
                                let item = row / positions
                                Statistics.affine(s + row * channels, d + row * channels, count: channels,
                                                  scale: scale + item * channels, shift: shift + item * channels,
                                                  activation: activation)
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// The same GroupNorm as the input of a product running at `precision`: in bf16 the
    /// normalised values are written as bfloat16 directly (the same values `groupNorm` then a
    /// conversion would give), and no float32 copy is made.
    func groupNormOperand(
        groups: Int, weight: Tensor?, bias: Tensor?, epsilon: Float,
        activation: NormalizationActivation, precision: Precision
    ) -> ProductOperand {
        guard precision == .bf16 else {
            return ProductOperand(groupNorm(groups: groups, weight: weight, bias: bias, epsilon: epsilon, activation: activation))
        }
        let (scales, shifts) = groupNormCoefficients(groups: groups, weight: weight, bias: bias, epsilon: epsilon)
        let channels = shape[rank - 1], positions = count / (shape[0] * channels)
        return withUnsafeBufferPointer { src in
            scales.withUnsafeBufferPointer { scale in
                shifts.withUnsafeBufferPointer { shift in
                    let (s, scale, shift) = (src.baseAddress!, scale.baseAddress!, shift.baseAddress!)
                    return ProductOperand(bfloat16Shape: shape, rows: shape[0] * positions) { rows, destination in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: channels) { row in
                            for index in rows {
                                let item = index / positions
                                Statistics.affine(s + index * channels, row.baseAddress!, count: channels,
                                                  scale: scale + item * channels, shift: shift + item * channels,
                                                  activation: activation)
                                BFloat16.convertRow(row.baseAddress!, into: destination + index * channels, count: channels)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Per item and channel, GroupNorm's y = x * scale + shift: [N * C] each.
    private func groupNormCoefficients(groups: Int, weight: Tensor?, bias: Tensor?, epsilon: Float) -> (scales: [Float], shifts: [Float]) {
        precondition(rank >= 2, "groupNorm needs [N, ..., C], got \(shape)")
        let n = shape[0], channels = shape[rank - 1]
        precondition(channels % groups == 0, "\(channels) channels do not split into \(groups) groups")
        let positions = count / (n * channels)
        let perGroup = channels / groups
        let runs = (positions + Statistics.positionsPerRun - 1) / Statistics.positionsPerRun
        let gamma = weight?.scalars, beta = bias?.scalars
        return withUnsafeBufferPointer { src in
            let s = src.baseAddress!
            // Per item and run of positions, per-channel sums (pass 1) then sums of squared
            // deviations from the group's mean (pass 2), combined per group in Double.
            let partial = UnsafeMutablePointer<Float>.allocate(capacity: n * runs * channels)
            defer { partial.deallocate() }
            func channelSums(center: UnsafePointer<Float>?) {
                parallelFor(n * runs) { jobs in
                    for job in jobs {
                        let (item, run) = (job / runs, job % runs)
                        let first = run * Statistics.positionsPerRun, last = min(first + Statistics.positionsPerRun, positions)
                        Statistics.sumPositions(s + (item * positions + first) * channels, positions: last - first, channels: channels,
                                                center: center.map { $0 + item * channels }, into: partial + job * channels)
                    }
                }
            }
            func groupTotals() -> [Double] {
                var totals = [Double](repeating: 0, count: n * groups)
                for item in 0..<n {
                    for run in 0..<runs {
                        let sums = partial + (item * runs + run) * channels
                        for c in 0..<channels { totals[item * groups + c / perGroup] += Double(sums[c]) }
                    }
                }
                return totals
            }
            let size = Double(positions * perGroup)
            channelSums(center: nil)
            let means = groupTotals().map { $0 / size }
            // Each channel's group mean, to subtract in pass 2.
            var centers = [Float](repeating: 0, count: n * channels)
            for i in 0..<(n * channels) { centers[i] = Float(means[(i / channels) * groups + (i % channels) / perGroup]) }
            centers.withUnsafeBufferPointer { channelSums(center: $0.baseAddress!) }
            let variances = groupTotals().map { $0 / size }
            var scales = [Float](repeating: 0, count: n * channels), shifts = [Float](repeating: 0, count: n * channels)
            for i in 0..<(n * channels) {
                let (item, c) = (i / channels, i % channels)
                let group = item * groups + c / perGroup
                let inverse = 1 / (Float(variances[group]) + epsilon).squareRoot()
                scales[i] = inverse * (gamma?[c] ?? 1)
                shifts[i] = (beta?[c] ?? 0) - Float(means[group]) * scales[i]
            }
            return (scales, shifts)
        }
    }

    /// LayerNorm over the last dimension.
    func layerNorm(weight: Tensor?, bias: Tensor?, epsilon: Float) -> Tensor {
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

    /// Positions summed together in float before the total goes to Double.
    static let positionsPerRun = 64

    /// Per-channel sums over `positions` rows of `channels` values (of x - center[c] squared,
    /// when `center` is given), into `sums`.
    @inline(__always)
    static func sumPositions(_ x: UnsafePointer<Float>, positions: Int, channels: Int, center: UnsafePointer<Float>?,
                             into sums: UnsafeMutablePointer<Float>) {
        sums.initialize(repeating: 0, count: channels)
        for p in 0..<positions {
            let row = x + p * channels
            if let center {
                for c in 0..<channels { let d = row[c] - center[c]; sums[c] += d * d }
            } else {
                for c in 0..<channels { sums[c] += row[c] }
            }
        }
    }

    /// y[c] = act(x[c] * scale[c] + shift[c]).
    @inline(__always)
    static func affine(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
        scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, activation: NormalizationActivation
    ) {
        switch activation {
        case .none:
            for i in 0..<count { y[i] = x[i] * scale[i] + shift[i] }
        case .silu:
            for i in 0..<count { y[i] = VectorMath.silu(x[i] * scale[i] + shift[i]) }
        }
    }
}
