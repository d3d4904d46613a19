import EditContract
/// Post-softmax attention probabilities for a run of queries, laid out [batch, heads, queries, keys],
/// handed to a hook that may edit them in place before they multiply the values.
public struct AttentionProbabilities {
    /// [batch, heads, queryRange.count, keys], row-major.
    let pointer: UnsafeMutablePointer<Float>
    let batch: Int
    let heads: Int
    /// The queries of this chunk, out of `totalQueries`.
    let queryRange: Range<Int>
    let totalQueries: Int
    let keys: Int

    var queries: Int { queryRange.count }

    /// The [queries, keys] matrix of one batch item and head.
    @inline(__always)
    func matrix(batch b: Int, head h: Int) -> UnsafeMutablePointer<Float> {
        pointer + (b * heads + h) * queries * keys
    }

    /// Elements in one batch item's [heads, queries, keys] block.
    var itemStride: Int { heads * queries * keys }
}

/// Multi-head scaled dot-product attention.
///
/// Two paths share one block routine (`AttentionBlocks`), so that they compute the same
/// numbers whenever every key fits one block (cross-attention, and self-attention up to 32x32
/// queries): explicit float32 probabilities when a hook reads or edits them (Prompt-to-Prompt)
/// or a mask applies, and the fused path (`fused`) otherwise, which never holds more than one
/// block of scores per thread and runs in the asked precision. An edited prompt's source row
/// therefore comes out the same whether or not a controller watched a layer.
public enum Attention {
    /// Bytes of scores held at once when a hook must see every head of a query chunk. With
    /// the default, the 4096-query self-attention of a 64x64 latent at batch 4 and 8 heads runs
    /// in chunks of 256 queries (128 MiB) rather than one 2 GiB score matrix.
    public static let defaultScoreBudget = 128 << 20

    /// softmax(Q K^T / sqrt(d) + mask) V per head.
    /// - Parameters:
    ///   - query: [B, Nq, heads*d]
    ///   - key, value: [B, Nk, heads*d]
    ///   - mask: optional additive mask [Nq, Nk] (the text encoder's causal mask)
    ///   - precision: of the fused path's products (the explicit path is float32)
    ///   - hook: sees, and may edit in place, the probabilities of every query chunk for all
    ///     batch items and heads at once, before they multiply the values
    /// - Returns: [B, Nq, heads*d]
    public static func scaledDotProduct(
        query: Tensor, key: Tensor, value: Tensor, heads: Int,
        mask: Tensor? = nil,
        precision: Precision = .fp32,
        scoreBudget: Int = defaultScoreBudget,
        hook: ((AttentionProbabilities) -> Void)? = nil
    ) -> Tensor {
        if hook == nil && mask == nil {
            return fused(query: query, key: key, value: value, heads: heads, precision: precision)
        }
        let shape = AttentionShape(query: query, key: key, value: value, heads: heads)
        if let mask { precondition(mask.shape == [shape.queries, shape.keys], "mask must be [\(shape.queries), \(shape.keys)], got \(mask.shape)") }
        let maskValues = mask?.scalars
        let blocks = shape.batch * heads
        let block = AttentionBlocks.queryBlock
        // Query chunks, every batch item and head at once, within the budget; whole blocks of
        // queries when the budget allows (as the fused path cuts them), else smaller pieces.
        let rowBytes = shape.keys * MemoryLayout<Float>.stride
        let affordable = max(1, min(shape.queries, scoreBudget / (blocks * rowBytes)))
        let chunk = affordable >= block ? affordable / block * block : affordable
        let piece = min(block, chunk)
        var output = Tensor(uninitializedShape: [shape.batch, shape.queries, shape.width])
        output.withUnsafeMutableBufferPointer { o in
            let routine = AttentionBlocks(query: query, key: key, value: value, shape: shape, precision: .fp32, output: o.baseAddress!)
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: blocks * min(chunk, shape.queries) * shape.keys)
            defer { scores.deallocate() }
            var start = 0
            while start < shape.queries {
                let count = min(chunk, shape.queries - start)
                let pieces = (count + piece - 1) / piece
                // Probabilities of each (item, head) for this chunk, a piece of queries at a time.
                parallelFor(blocks * pieces) { jobs in
                    for job in jobs {
                        let (index, first) = (job / pieces, start + (job % pieces) * piece)
                        let rows = min(piece, start + count - first)
                        let matrix = scores + (index * count + first - start) * shape.keys
                        routine.probabilities(item: index / heads, head: index % heads, firstQuery: first, rows: rows, into: matrix) { row, line in
                            guard let maskValues else { return }
                            for j in 0..<shape.keys { line[j] += maskValues[(first + row) * shape.keys + j] }
                        }
                    }
                }
                if let hook {
                    hook(AttentionProbabilities(pointer: scores, batch: shape.batch, heads: heads,
                                                queryRange: start..<(start + count), totalQueries: shape.queries, keys: shape.keys))
                }
                parallelFor(blocks * pieces) { jobs in
                    for job in jobs {
                        let (index, first) = (job / pieces, start + (job % pieces) * piece)
                        let rows = min(piece, start + count - first)
                        routine.attend(item: index / heads, head: index % heads, firstQuery: first, rows: rows,
                                       probabilities: UnsafeRawPointer(scores + (index * count + first - start) * shape.keys))
                    }
                }
                start += count
            }
        }
        return output
    }
}

/// The sizes of one attention call.
struct AttentionShape {
    let batch, queries, keys, width, heads: Int
    var headWidth: Int { width / heads }
    var scale: Float { 1 / Float(headWidth).squareRoot() }

    init(query: Tensor, key: Tensor, value: Tensor, heads: Int) {
        precondition(query.rank == 3 && key.rank == 3 && value.shape == key.shape,
                     "attention expects q [B, Nq, C], k/v [B, Nk, C]; got \(query.shape), \(key.shape), \(value.shape)")
        (batch, queries, width) = (query.shape[0], query.shape[1], query.shape[2])
        keys = key.shape[1]
        self.heads = heads
        precondition(key.shape[0] == batch && key.shape[2] == width && width % heads == 0,
                     "attention shapes disagree: q \(query.shape), k \(key.shape), heads \(heads)")
    }
}

/// Q or V rearranged per (item, head) as contiguous [N, d'] matrices in the precision of the
/// products: oneDNN's blocked kernels take plain dense operands, where a head's columns read in
/// place (rows `width` apart) send it to a general kernel that packs them on every call.
final class HeadRows {
    /// What follows a row's d elements.
    enum Appended {
        case nothing
        /// V's layout: a column of ones, padded to a multiple of 16 (oneDNN multiplies by a
        /// width of whole vector registers about twice as fast as by d = 40 or 80), so that P V'
        /// also yields the sum of each row of P.
        case onesColumn
        /// Q's layout for `AttentionBlocks.exponentials`: minus the bound on the row's scores
        /// (`KeyBoxes.bounds`, [B, heads, N]), then a zero (d' = d + 2, even, as bfloat16
        /// products take k in pairs), against K^T's row of ones.
        case negatedBound(AlignedBuffer)
    }

    let width: Int
    let precision: Precision
    private let heads, count: Int
    private let buffer: AlignedBuffer

    /// - Parameter tensor: [B, N, heads*d]
    init(_ tensor: Tensor, heads: Int, precision: Precision, appending appended: Appended) {
        let (batch, count, fullWidth) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        let d = fullWidth / heads
        switch appended {
        case .nothing: width = d
        case .onesColumn: width = (d + 1 + 15) / 16 * 16
        case .negatedBound: width = d + 2
        }
        (self.heads, self.count, self.precision) = (heads, count, precision)
        let rows = batch * heads * count
        buffer = AlignedBuffer(byteCount: rows * width * precision.elementSize)
        let (padded, width) = (buffer.pointer, width)
        tensor.withUnsafeBufferPointer { t in
            let source = t.baseAddress!
            parallelFor(rows, minimumChunk: 256) { range in
                for row in range {
                    // Row (item, head, n) from tensor[item, n, head * d ..< (head + 1) * d].
                    let (item, head, n) = (row / (heads * count), (row / count) % heads, row % count)
                    let from = source + (item * count + n) * fullWidth + head * d
                    // Column d (ones, or minus the bound), then zeros to the width.
                    let lead: Float? = switch appended {
                    case .nothing: nil
                    case .onesColumn: 1
                    case .negatedBound(let bounds): -bounds.pointer.assumingMemoryBound(to: Float.self)[row]
                    }
                    switch precision {
                    case .fp32:
                        let to = padded.assumingMemoryBound(to: Float.self) + row * width
                        to.update(from: from, count: d)
                        if let lead {
                            to[d] = lead
                            for i in (d + 1)..<width { to[i] = 0 }
                        }
                    case .bf16:
                        let to = padded.assumingMemoryBound(to: UInt16.self) + row * width
                        BFloat16.convertRow(from, into: to, count: d)
                        if let lead {
                            to[d] = BFloat16.bits(lead)
                            for i in (d + 1)..<width { to[i] = 0 }
                        }
                    }
                }
            }
        }
    }

    /// Where row `first` of (item, head) starts.
    func rows(item: Int, head: Int, first: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(buffer.pointer) + (((item * heads + head) * count + first) * width) * precision.elementSize
    }
}

/// K rearranged per (item, head) as K^T [d, keys], contiguous, in the precision of the
/// products: oneDNN's blocked kernels take a plain row-major B, where K read in place (a
/// transposed operand, its columns `width` apart) sends it to a general kernel that packs B on
/// every call. For `AttentionBlocks.exponentials`, a row of ones and a row of zeros follow
/// (d' = d + 2), against Q's column of negated bounds.
final class TransposedKeys {
    let precision: Precision
    /// Rows per (item, head): d, or d + 2.
    let depth: Int
    private let shape: AttentionShape
    private let buffer: AlignedBuffer

    init(_ key: Tensor, shape: AttentionShape, precision: Precision, appendingOnesRow: Bool) {
        let (d, keys, heads, width) = (shape.headWidth, shape.keys, shape.heads, shape.width)
        let depth = appendingOnesRow ? d + 2 : d
        (self.shape, self.precision, self.depth) = (shape, precision, depth)
        let rows = shape.batch * heads * depth
        buffer = AlignedBuffer(byteCount: rows * keys * precision.elementSize)
        let transposed = buffer.pointer
        key.withUnsafeBufferPointer { k in
            let source = k.baseAddress!
            parallelFor(rows, minimumChunk: 16) { range in
                for row in range {
                    // Row (item, head, i) of K^T: column head * d + i of every key of the item,
                    // or past d, ones then zeros.
                    let (index, i) = (row / depth, row % depth)
                    let (item, head) = (index / heads, index % heads)
                    let from = source + item * keys * width + head * d + i
                    let filler: Float = i == d ? 1 : 0
                    switch precision {
                    case .fp32:
                        let to = transposed.assumingMemoryBound(to: Float.self) + row * keys
                        if i < d {
                            for j in 0..<keys { to[j] = from[j * width] }
                        } else {
                            to.initialize(repeating: filler, count: keys)
                        }
                    case .bf16:
                        let to = transposed.assumingMemoryBound(to: UInt16.self) + row * keys
                        if i < d {
                            for j in 0..<keys { to[j] = BFloat16.bits(from[j * width]) }
                        } else {
                            to.initialize(repeating: BFloat16.bits(filler), count: keys)
                        }
                    }
                }
            }
        }
    }

    /// Column `firstKey` of (item, head)'s K^T, whose rows are `shape.keys` apart.
    func columns(item: Int, head: Int, firstKey: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(buffer.pointer) + (((item * shape.heads + head) * depth) * shape.keys + firstKey) * precision.elementSize
    }
}

/// The products and softmax of one block of queries against all keys, shared by the explicit
/// and fused paths (oneDNN products, so both paths round alike).
struct AttentionBlocks {
    /// Queries per block: against 4096 keys, 2 MiB of bfloat16 exponentials (blocks of 128
    /// measured slower, when each product still packed K^T and V afresh); against 1024 keys,
    /// 1 MiB of float32 scores.
    static let queryBlock = 256

    /// The least sum of a row of `exponentials` that is trusted: its largest term is then at
    /// least e^-48 (e^-40 over 4096 keys), so the terms that exp flushed to zero (below e^-87)
    /// weigh less than e^-39 of it. A smaller sum means the row's bound lay far above its
    /// scores, and the block goes through the softmax instead.
    static let smallestTrustedSum = VectorMath.exp(-40)

    let shape: AttentionShape
    let precision: Precision
    let queries: HeadRows
    let keys: TransposedKeys
    let values: HeadRows
    let output: UnsafeMutablePointer<Float>
    /// Whether Q and K carry the bound column and row of `exponentials`.
    let exponentiates: Bool
    /// With `exponentiates`: K'^T and V' of every head blocked for the products of a full
    /// block of queries (other blocks read the plain ones).
    private let blockedKeys, blockedValues: BlockedHeadOperands?

    /// Q, K and V rearranged per head in the products' precision; `output` [B, Nq, heads*d].
    /// `exponentiating`: lay Q and K out for `exponentials` too (the scores stay available).
    init(query: Tensor, key: Tensor, value: Tensor, shape: AttentionShape, precision: Precision, exponentiating: Bool = false,
         output: UnsafeMutablePointer<Float>) {
        (self.shape, self.precision, self.output, exponentiates) = (shape, precision, output, exponentiating)
        let queries = HeadRows(query, heads: shape.heads, precision: precision,
                               appending: exponentiating ? .negatedBound(KeyBoxes(key, shape: shape).bounds(query)) : .nothing)
        let keys = TransposedKeys(key, shape: shape, precision: precision, appendingOnesRow: exponentiating)
        let values = HeadRows(value, heads: shape.heads, precision: precision, appending: .onesColumn)
        (self.queries, self.keys, self.values) = (queries, keys, values)
        if exponentiating {
            let (rows, heads) = (Self.fullBlockRows(shape), shape.heads)
            blockedKeys = BlockedHeadOperands(Self.exponentialsShape(shape, rows: rows, queries: queries, keys: keys), heads: shape.batch * heads) {
                keys.columns(item: $0 / heads, head: $0 % heads, firstKey: 0)
            }
            blockedValues = BlockedHeadOperands(Self.valuesShape(rows: rows, columns: shape.keys, values: values, precision: precision,
                                                                 accumulates: false), heads: shape.batch * heads) {
                values.rows(item: $0 / heads, head: $0 % heads, first: 0)
            }
        } else {
            (blockedKeys, blockedValues) = (nil, nil)
        }
    }

    /// Rows of every block of queries but the last (which the blocked operands serve).
    private static func fullBlockRows(_ shape: AttentionShape) -> Int { min(queryBlock, shape.queries) }

    func queryOffset(item: Int, head: Int, firstQuery: Int) -> Int {
        (item * shape.queries + firstQuery) * shape.width + head * shape.headWidth
    }

    /// S[rows, columns] = scale * Q K^T for keys firstKey..., K^T's block a [d, columns] matrix.
    func scores(item: Int, head: Int, firstQuery: Int, rows: Int, firstKey: Int, columns: Int, into s: UnsafeMutablePointer<Float>) {
        MatrixProduct.prepared(MatmulShape(
            m: rows, k: shape.headWidth, n: columns, aRowStride: queries.width, bRowStride: shape.keys, bColumnStride: 1,
            cRowStride: columns, precision: precision, scale: shape.scale))
            .run(a: queries.rows(item: item, head: head, first: firstQuery),
                 b: keys.columns(item: item, head: head, firstKey: firstKey), bias: nil, c: s)
    }

    /// E[rows, keys] = exp(scale (Q K^T - b)) against every key, in the products' precision,
    /// where b is each query's bound (`KeyBoxes`): probabilities up to one factor per row, which
    /// `attend(renormalizing:)` divides out, in one product with no pass over the scores.
    /// Needs `exponentiates`.
    func exponentials(item: Int, head: Int, firstQuery: Int, rows: Int, into e: UnsafeMutableRawPointer) {
        let a = queries.rows(item: item, head: head, first: firstQuery)
        if let blockedKeys, rows == Self.fullBlockRows(shape) {
            blockedKeys.product.run(a: a, b: blockedKeys.operand(item * shape.heads + head), bias: nil, c: e)
        } else {
            MatrixProduct.prepared(Self.exponentialsShape(shape, rows: rows, queries: queries, keys: keys))
                .run(a: a, b: keys.columns(item: item, head: head, firstKey: 0), bias: nil, c: e)
        }
    }

    private static func exponentialsShape(_ shape: AttentionShape, rows: Int, queries: HeadRows, keys: TransposedKeys) -> MatmulShape {
        MatmulShape(m: rows, k: keys.depth, n: shape.keys, aRowStride: queries.width, bRowStride: shape.keys, bColumnStride: 1,
                    cRowStride: shape.keys, precision: queries.precision, output: queries.precision, scale: shape.scale,
                    epilogue: .exponential)
    }

    /// The probabilities of `rows` queries against every key into `s` [rows, keys]: scores,
    /// `adjust` (a mask), then oneDNN's softmax per row, in float32 (as the fused path's, so the
    /// two give the same bits).
    func probabilities(item: Int, head: Int, firstQuery: Int, rows: Int, into s: UnsafeMutablePointer<Float>,
                       adjust: (Int, UnsafeMutablePointer<Float>) -> Void = { _, _ in }) {
        scores(item: item, head: head, firstQuery: firstQuery, rows: rows, firstKey: 0, columns: shape.keys, into: s)
        for row in 0..<rows { adjust(row, s + row * shape.keys) }
        RowSoftmax.prepared(.init(rows: rows, columns: shape.keys, output: .fp32)).run(s, into: UnsafeMutableRawPointer(s))
    }

    /// A[rows, d'] (+)= P V' for keys firstKey... (`probabilities` in the products' precision):
    /// columns 0..<d the output rows, column d the sums of P's rows.
    func values(item: Int, head: Int, rows: Int, firstKey: Int, columns: Int, probabilities: UnsafeRawPointer,
                into accumulator: UnsafeMutablePointer<Float>, accumulates: Bool) {
        if let blockedValues, rows == Self.fullBlockRows(shape), columns == shape.keys, !accumulates {
            blockedValues.product.run(a: probabilities, b: blockedValues.operand(item * shape.heads + head), bias: nil, c: accumulator)
        } else {
            MatrixProduct.prepared(Self.valuesShape(rows: rows, columns: columns, values: values, precision: precision, accumulates: accumulates))
                .run(a: probabilities, b: values.rows(item: item, head: head, first: firstKey), bias: nil, c: accumulator)
        }
    }

    private static func valuesShape(rows: Int, columns: Int, values: HeadRows, precision: Precision, accumulates: Bool) -> MatmulShape {
        MatmulShape(m: rows, k: columns, n: values.width, aRowStride: columns, bRowStride: values.width, bColumnStride: 1,
                    cRowStride: values.width, precision: precision, epilogue: accumulates ? .accumulate : .none)
    }

    /// The output rows of probabilities over every key ([rows, keys], in the products' precision).
    /// With `renormalizing`, each output row is divided by the sum of its probabilities as the
    /// product took them (column d): bfloat16 probabilities rounded after the softmax no longer
    /// sum to 1, and this puts back what rounding took, as it divides out `exponentials`'
    /// factor. Not for probabilities a hook reweighted on purpose.
    /// - Returns: false, writing nothing, when a row's sum is below `smallestSum` (or NaN).
    @discardableResult
    func attend(item: Int, head: Int, firstQuery: Int, rows: Int, probabilities: UnsafeRawPointer, renormalizing: Bool = false,
                smallestSum: Float? = nil) -> Bool {
        let product = UnsafeMutablePointer<Float>.allocate(capacity: rows * values.width)
        defer { product.deallocate() }
        self.values(item: item, head: head, rows: rows, firstKey: 0, columns: shape.keys, probabilities: probabilities,
                    into: product, accumulates: false)
        let d = shape.headWidth
        if let smallestSum {
            for row in 0..<rows where !(product[row * values.width + d] >= smallestSum) { return false }
        }
        for row in 0..<rows {
            let line = product + row * values.width
            let target = output + queryOffset(item: item, head: head, firstQuery: firstQuery + row)
            if renormalizing {
                let inverse = 1 / line[d]
                for i in 0..<d { target[i] = line[i] * inverse }
            } else {
                target.update(from: line, count: d)
            }
        }
        return true
    }
}
