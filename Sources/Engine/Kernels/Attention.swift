/// Post-softmax attention probabilities for a run of queries, laid out [batch, heads, queries, keys],
/// handed to a hook that may edit them in place before they multiply the values.
public struct AttentionProbabilities {
    /// [batch, heads, queryRange.count, keys], row-major.
    public let pointer: UnsafeMutablePointer<Float>
    public let batch: Int
    public let heads: Int
    /// The queries of this chunk, out of `totalQueries`.
    public let queryRange: Range<Int>
    public let totalQueries: Int
    public let keys: Int

    public var queries: Int { queryRange.count }

    /// The [queries, keys] matrix of one batch item and head.
    @inline(__always)
    public func matrix(batch b: Int, head h: Int) -> UnsafeMutablePointer<Float> {
        pointer + (b * heads + h) * queries * keys
    }

    /// Elements in one batch item's [heads, queries, keys] block.
    public var itemStride: Int { heads * queries * keys }
}

/// Multi-head scaled dot-product attention with explicit probabilities.
public enum Attention {
    /// Bytes of scores held at once when a hook must see every head of a query chunk. With
    /// the default, the 4096-query self-attention of a 64x64 latent at batch 4 and 8 heads runs
    /// in chunks of 256 queries (128 MiB) rather than one 2 GiB score matrix.
    public static let defaultScoreBudget = 128 << 20
    /// Bytes of one head's score block without a hook. Larger blocks amortise the packing of K
    /// and V over more queries; 4 MiB measured fastest for SD's 4096-token self-attention
    /// (527 ms against 677 ms at 512 KiB, batch 2, 8 heads of 40, 2 cores).
    static let blockBudget = 4 << 20

    /// softmax(Q K^T / sqrt(d)) V per head.
    /// - Parameters:
    ///   - query: [B, Nq, heads*d]
    ///   - key, value: [B, Nk, heads*d]
    ///   - mask: optional additive mask [Nq, Nk] (the text encoder's causal mask)
    ///   - hook: sees, and may edit in place, the probabilities of every query chunk for all
    ///     batch items and heads at once, before they multiply the values
    /// - Returns: [B, Nq, heads*d]
    public static func scaledDotProduct(
        query: Tensor, key: Tensor, value: Tensor, heads: Int,
        mask: Tensor? = nil,
        scoreBudget: Int = defaultScoreBudget,
        hook: ((AttentionProbabilities) -> Void)? = nil
    ) -> Tensor {
        precondition(query.rank == 3 && key.rank == 3 && value.shape == key.shape,
                     "attention expects q [B, Nq, C], k/v [B, Nk, C]; got \(query.shape), \(key.shape), \(value.shape)")
        let (batch, queries, width) = (query.shape[0], query.shape[1], query.shape[2])
        let keys = key.shape[1]
        precondition(key.shape[0] == batch && key.shape[2] == width && width % heads == 0,
                     "attention shapes disagree: q \(query.shape), k \(key.shape), heads \(heads)")
        if let mask { precondition(mask.shape == [queries, keys], "mask must be [\(queries), \(keys)], got \(mask.shape)") }
        let headWidth = width / heads
        let scale = 1 / Float(headWidth).squareRoot()
        let rowBytes = keys * MemoryLayout<Float>.stride
        let blocks = batch * heads
        let maskValues = mask?.scalars

        var output = Tensor(uninitializedShape: [batch, queries, width])
        query.withUnsafeBufferPointer { q in
        key.withUnsafeBufferPointer { k in
        value.withUnsafeBufferPointer { v in
        output.withUnsafeMutableBufferPointer { o in
            let (pq, pk, pv, po) = (q.baseAddress!, k.baseAddress!, v.baseAddress!, o.baseAddress!)
            // Probabilities of queries start..<start+count for one (batch item, head) block, into s.
            func probabilities(_ block: Int, start: Int, count: Int, into s: UnsafeMutablePointer<Float>) {
                let (b, h) = (block / heads, block % heads)
                // s = scale * Q[b, start..<start+count, h] K[b, :, h]^T; heads read in place (lda = width)
                BLAS.gemm(transposeB: true, m: count, n: keys, k: headWidth, alpha: scale,
                          a: pq + (b * queries + start) * width + h * headWidth, lda: width,
                          b: pk + b * keys * width + h * headWidth, ldb: width,
                          c: s, ldc: keys)
                if let maskValues {
                    for row in 0..<count {
                        let line = s + row * keys
                        for j in 0..<keys { line[j] += maskValues[(start + row) * keys + j] }
                    }
                }
                for row in 0..<count { Softmax.row(s + row * keys, count: keys) }
            }
            // O[b, start..., h] = P V[b, :, h]
            func attend(_ block: Int, start: Int, count: Int, from s: UnsafePointer<Float>) {
                let (b, h) = (block / heads, block % heads)
                BLAS.gemm(m: count, n: headWidth, k: keys, a: s, lda: keys,
                          b: pv + b * keys * width + h * headWidth, ldb: width,
                          c: po + (b * queries + start) * width + h * headWidth, ldc: width)
            }
            if let hook {
                // Every block of a query chunk at once, so the hook sees all prompts and heads.
                let chunk = max(1, min(queries, scoreBudget / (blocks * rowBytes)))
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: blocks * chunk * keys)
                defer { scores.deallocate() }
                var start = 0
                while start < queries {
                    let count = min(chunk, queries - start)
                    parallelFor(blocks) { range in
                        for block in range { probabilities(block, start: start, count: count, into: scores + block * count * keys) }
                    }
                    hook(AttentionProbabilities(pointer: scores, batch: batch, heads: heads,
                                                queryRange: start..<(start + count), totalQueries: queries, keys: keys))
                    parallelFor(blocks) { range in
                        for block in range { attend(block, start: start, count: count, from: scores + block * count * keys) }
                    }
                    start += count
                }
            } else {
                // Each thread takes whole blocks through all their queries with its own scratch.
                let chunk = max(1, min(queries, blockBudget / rowBytes))
                parallelFor(blocks) { range in
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: chunk * keys)
                    defer { scratch.deallocate() }
                    for block in range {
                        var start = 0
                        while start < queries {
                            let count = min(chunk, queries - start)
                            probabilities(block, start: start, count: count, into: scratch)
                            attend(block, start: start, count: count, from: scratch)
                            start += count
                        }
                    }
                }
            }
        }
        }
        }
        }
        return output
    }
}
