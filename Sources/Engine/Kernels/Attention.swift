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
/// place (rows `width` apart) send it to a general kernel that packs them on every call. For V,
/// d' is d + 1 rounded up to a multiple of 16 (oneDNN multiplies by a width of whole vector
/// registers about twice as fast as by d = 40 or 80) and column d holds ones, so that P V'
/// also yields the sum of each row of P.
final class HeadRows {
    let width: Int
    let precision: Precision
    private let heads, count: Int
    private let buffer: AlignedBuffer

    /// - Parameters:
    ///   - tensor: [B, N, heads*d]
    ///   - appendingOnes: V's layout (a column of ones, padded to 16); else d' = d
    init(_ tensor: Tensor, heads: Int, precision: Precision, appendingOnes: Bool) {
        let (batch, count, fullWidth) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        let d = fullWidth / heads
        width = appendingOnes ? (d + 1 + 15) / 16 * 16 : d
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
                    switch precision {
                    case .fp32:
                        let to = padded.assumingMemoryBound(to: Float.self) + row * width
                        for i in 0..<d { to[i] = from[i] }
                        if appendingOnes {
                            to[d] = 1
                            for i in (d + 1)..<width { to[i] = 0 }
                        }
                    case .bf16:
                        let to = padded.assumingMemoryBound(to: UInt16.self) + row * width
                        BFloat16.convertRow(from, into: to, count: d)
                        if appendingOnes {
                            to[d] = BFloat16.bits(1)
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
/// every call.
final class TransposedKeys {
    let precision: Precision
    private let shape: AttentionShape
    private let buffer: AlignedBuffer

    init(_ key: Tensor, shape: AttentionShape, precision: Precision) {
        (self.shape, self.precision) = (shape, precision)
        let (d, keys, heads, width) = (shape.headWidth, shape.keys, shape.heads, shape.width)
        let rows = shape.batch * heads * d
        buffer = AlignedBuffer(byteCount: rows * keys * precision.elementSize)
        let transposed = buffer.pointer
        key.withUnsafeBufferPointer { k in
            let source = k.baseAddress!
            parallelFor(rows, minimumChunk: 16) { range in
                for row in range {
                    // Row (item, head, i) of K^T: column head * d + i of every key of the item.
                    let (item, column) = (row / (heads * d), row % (heads * d))
                    let from = source + item * keys * width + column
                    switch precision {
                    case .fp32:
                        let to = transposed.assumingMemoryBound(to: Float.self) + row * keys
                        for j in 0..<keys { to[j] = from[j * width] }
                    case .bf16:
                        let to = transposed.assumingMemoryBound(to: UInt16.self) + row * keys
                        for j in 0..<keys { to[j] = BFloat16.bits(from[j * width]) }
                    }
                }
            }
        }
    }

    /// Column `firstKey` of (item, head)'s K^T, whose rows are `shape.keys` apart.
    func columns(item: Int, head: Int, firstKey: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(buffer.pointer) + (((item * shape.heads + head) * shape.headWidth) * shape.keys + firstKey) * precision.elementSize
    }
}

/// The products and softmax of one block of queries against all keys, shared by the explicit
/// and fused paths (oneDNN products, so both paths round alike).
struct AttentionBlocks {
    /// Queries per block: a block of scores against 1024 keys is 512 KiB, which stays in a
    /// core's L2 cache with its K and V.
    static let queryBlock = 128

    let shape: AttentionShape
    let precision: Precision
    let queries: HeadRows
    let keys: TransposedKeys
    let values: HeadRows
    let output: UnsafeMutablePointer<Float>

    /// Q, K and V rearranged per head in the products' precision; `output` [B, Nq, heads*d].
    init(query: Tensor, key: Tensor, value: Tensor, shape: AttentionShape, precision: Precision, output: UnsafeMutablePointer<Float>) {
        (self.shape, self.precision, self.output) = (shape, precision, output)
        queries = HeadRows(query, heads: shape.heads, precision: precision, appendingOnes: false)
        keys = TransposedKeys(key, shape: shape, precision: precision)
        values = HeadRows(value, heads: shape.heads, precision: precision, appendingOnes: true)
    }

    func queryOffset(item: Int, head: Int, firstQuery: Int) -> Int {
        (item * shape.queries + firstQuery) * shape.width + head * shape.headWidth
    }

    /// S[rows, columns] = scale * Q K^T for keys firstKey..., K^T's block a [d, columns] matrix.
    func scores(item: Int, head: Int, firstQuery: Int, rows: Int, firstKey: Int, columns: Int, into s: UnsafeMutablePointer<Float>) {
        MatrixProduct.prepared(MatmulShape(
            m: rows, k: shape.headWidth, n: columns, aRowStride: shape.headWidth, bRowStride: shape.keys, bColumnStride: 1,
            cRowStride: columns, precision: precision, scale: shape.scale))
            .run(a: queries.rows(item: item, head: head, first: firstQuery),
                 b: keys.columns(item: item, head: head, firstKey: firstKey), bias: nil, c: s)
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
        MatrixProduct.prepared(MatmulShape(
            m: rows, k: columns, n: values.width, aRowStride: columns, bRowStride: values.width, bColumnStride: 1,
            cRowStride: values.width, precision: precision, epilogue: accumulates ? .accumulate : .none))
            .run(a: probabilities, b: values.rows(item: item, head: head, first: firstKey), bias: nil, c: accumulator)
    }

    /// The output rows of probabilities over every key ([rows, keys], in the products' precision).
    /// With `renormalizing`, each output row is divided by the sum of its probabilities as the
    /// product took them (column d): bfloat16 probabilities rounded after the softmax no longer
    /// sum to 1, and this puts back what rounding took. Not for probabilities a hook reweighted
    /// on purpose.
    func attend(item: Int, head: Int, firstQuery: Int, rows: Int, probabilities: UnsafeRawPointer, renormalizing: Bool = false) {
        let product = UnsafeMutablePointer<Float>.allocate(capacity: rows * values.width)
        defer { product.deallocate() }
        self.values(item: item, head: head, rows: rows, firstKey: 0, columns: shape.keys, probabilities: probabilities,
                    into: product, accumulates: false)
        let d = shape.headWidth
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
    }
}
