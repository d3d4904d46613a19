/// Upper bounds on a query's attention scores, read from boxes around runs of keys, so that
/// exp(score - bound) can be taken inside the Q K^T product (`AttentionBlocks.exponentials`)
/// instead of in a softmax pass that first finds each row's maximum.
///
/// The keys of each (batch item, head) are cut into at most `groupLimit` runs of consecutive
/// keys; a run's elementwise minimum lo and maximum hi bound q·k for each of its keys by
/// Σ_i max(q_i lo_i, q_i hi_i) = q·c + |q|·r, with the box's centre c = (hi + lo) / 2 and
/// radius r = (hi - lo) / 2, and the largest of these over the runs bounds every score of q.
/// In self-attention consecutive keys are neighbouring pixels, whose boxes are narrow, so the
/// bound lies near the true maximum; where it does not, the probabilities underflow and the
/// caller notices (their sum) and takes the softmax path.
final class KeyBoxes: @unchecked Sendable {
    /// Runs per (item, head): the bounds are one product of [q, |q|] [Nq, 2d] by [C; R] [2d, runs],
    /// about 3 % of the scores' at 4096 keys.
    static let groupLimit = 64

    let groups: Int
    private let shape: AttentionShape
    /// [B, heads, 2d, groups]: the centres' d rows, then the radii's.
    private let buffer: AlignedBuffer

    /// - Parameter key: [B, Nk, heads*d]
    init(_ key: Tensor, shape: AttentionShape) {
        let (d, keys, heads, width) = (shape.headWidth, shape.keys, shape.heads, shape.width)
        let groupSize = (keys + Self.groupLimit - 1) / Self.groupLimit
        let groups = (keys + groupSize - 1) / groupSize
        (self.groups, self.shape) = (groups, shape)
        buffer = AlignedBuffer(byteCount: shape.batch * heads * 2 * d * groups * MemoryLayout<Float>.stride)
        let boxes = buffer.pointer.assumingMemoryBound(to: Float.self)
        key.withUnsafeBufferPointer { k in
            let source = k.baseAddress!
            parallelFor(shape.batch * heads * groups, minimumChunk: 16) { range in
                for unit in range {
                    let (index, group) = (unit / groups, unit % groups)
                    let (item, head) = (index / heads, index % heads)
                    let centres = boxes + index * 2 * d * groups + group
                    let radii = centres + d * groups
                    let run = (group * groupSize)..<min((group + 1) * groupSize, keys)
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * d) { extremes in
                        let (low, high) = (extremes.baseAddress!, extremes.baseAddress! + d)
                        low.initialize(repeating: .infinity, count: d)
                        high.initialize(repeating: -.infinity, count: d)
                        for j in run {
                            let row = source + (item * keys + j) * width + head * d
                            for i in 0..<d { (low[i], high[i]) = (min(low[i], row[i]), max(high[i], row[i])) }
                        }
                        for i in 0..<d { (centres[i * groups], radii[i * groups]) = ((high[i] + low[i]) / 2, (high[i] - low[i]) / 2) }
                    }
                }
            }
        }
    }

    /// The largest q·k (unscaled) that any key can give, for every query of `query`
    /// [B, Nq, heads*d]: [B, heads, Nq] float32.
    func bounds(_ query: Tensor) -> AlignedBuffer {
        let (d, heads, width, queries) = (shape.headWidth, shape.heads, shape.width, shape.queries)
        let block = AttentionBlocks.queryBlock
        let blocks = (queries + block - 1) / block
        let result = AlignedBuffer(byteCount: shape.batch * heads * queries * MemoryLayout<Float>.stride)
        let (bounds, boxes, groups) = (result.pointer.assumingMemoryBound(to: Float.self), buffer.pointer.assumingMemoryBound(to: Float.self), groups)
        query.withUnsafeBufferPointer { q in
            let source = q.baseAddress!
            parallelFor(shape.batch * heads * blocks) { units in
                let signed = UnsafeMutablePointer<Float>.allocate(capacity: block * 2 * d)
                let sums = UnsafeMutablePointer<Float>.allocate(capacity: block * groups)
                defer {
                    signed.deallocate()
                    sums.deallocate()
                }
                for unit in units {
                    let (index, first) = (unit / blocks, (unit % blocks) * block)
                    let (item, head, rows) = (index / heads, index % heads, min(block, queries - first))
                    // [q, |q|] per query, times [C; R]: each run's bound.
                    for row in 0..<rows {
                        Self.signedRow(source + (item * queries + first + row) * width + head * d, into: signed + row * 2 * d, count: d)
                    }
                    MatrixProduct.prepared(MatmulShape(m: rows, k: 2 * d, n: groups, aRowStride: 2 * d, bRowStride: groups, bColumnStride: 1,
                                                       cRowStride: groups, precision: .fp32))
                        .run(a: signed, b: boxes + index * 2 * d * groups, bias: nil, c: sums)
                    for row in 0..<rows {
                        var largest = -Float.infinity
                        for g in 0..<groups { largest = max(largest, sums[row * groups + g]) }
                        bounds[index * queries + first + row] = largest
                    }
                }
            }
        }
        return result
    }

    /// [q, |q|] of one query, in a loop LLVM vectorises.
    @inline(never)
    private static func signedRow(_ query: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { (destination[i], destination[count &+ i]) = (query[i], abs(query[i])) }
    }
}
