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
        let paddedValues = PaddedValues(value, shape: shape, precision: .fp32)
        ProductInput.with(query, precision: .fp32) { q in
        ProductInput.with(key, precision: .fp32) { k in
        output.withUnsafeMutableBufferPointer { o in
            let routine = AttentionBlocks(shape: shape, precision: .fp32, query: q, key: k, values: paddedValues, output: o.baseAddress!)
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

/// V rearranged per (item, head) as [keys, d'], d' being d + 1 rounded up to a multiple of 16,
/// in the precision of the products: oneDNN multiplies by a width of whole vector registers
/// about twice as fast as by d = 40 or 80, and column d holds ones, so that P V' also yields
/// the sum of each row of P.
final class PaddedValues {
    let width: Int
    let precision: Precision
    private let shape: AttentionShape
    private let buffer: AlignedBuffer

    init(_ value: Tensor, shape: AttentionShape, precision: Precision) {
        let d = shape.headWidth
        width = (d + 1 + 15) / 16 * 16
        (self.shape, self.precision) = (shape, precision)
        let rows = shape.batch * shape.heads * shape.keys
        buffer = AlignedBuffer(byteCount: rows * width * precision.elementSize)
        let (padded, width, heads, keys) = (buffer.pointer, width, shape.heads, shape.keys)
        value.withUnsafeBufferPointer { v in
            let source = v.baseAddress!
            parallelFor(rows, minimumChunk: 256) { range in
                for row in range {
                    // Row (item, head, key) of V' from V[item, key, head * d ..< (head + 1) * d].
                    let (item, head, key) = (row / (heads * keys), (row / keys) % heads, row % keys)
                    let from = source + (item * keys + key) * shape.width + head * d
                    switch precision {
                    case .fp32:
                        let to = padded.assumingMemoryBound(to: Float.self) + row * width
                        for i in 0..<d { to[i] = from[i] }
                        to[d] = 1
                        for i in (d + 1)..<width { to[i] = 0 }
                    case .bf16:
                        let to = padded.assumingMemoryBound(to: UInt16.self) + row * width
                        for i in 0..<d { to[i] = BFloat16.bits(from[i]) }
                        to[d] = BFloat16.bits(1)
                        for i in (d + 1)..<width { to[i] = 0 }
                    }
                }
            }
        }
    }

    /// Where key `firstKey` of (item, head) starts.
    func rows(item: Int, head: Int, firstKey: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(buffer.pointer) + (((item * shape.heads + head) * shape.keys + firstKey) * width) * precision.elementSize
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
    let query, key: ProductInput
    let values: PaddedValues
    let output: UnsafeMutablePointer<Float>

    func queryOffset(item: Int, head: Int, firstQuery: Int) -> Int {
        (item * shape.queries + firstQuery) * shape.width + head * shape.headWidth
    }

    func keyOffset(item: Int, head: Int, firstKey: Int) -> Int {
        (item * shape.keys + firstKey) * shape.width + head * shape.headWidth
    }

    /// S[rows, columns] = scale * Q K^T for keys firstKey..., K's block read as a [d, columns]
    /// matrix in place.
    func scores(item: Int, head: Int, firstQuery: Int, rows: Int, firstKey: Int, columns: Int, into s: UnsafeMutablePointer<Float>) {
        MatrixProduct.prepared(MatmulShape(
            m: rows, k: shape.headWidth, n: columns, aRowStride: shape.width, bRowStride: 1, bColumnStride: shape.width,
            cRowStride: columns, precision: precision, scale: shape.scale))
            .run(a: query.advanced(by: queryOffset(item: item, head: head, firstQuery: firstQuery)),
                 b: key.advanced(by: keyOffset(item: item, head: head, firstKey: firstKey)), bias: nil, c: s)
    }

    /// The probabilities of `rows` queries against every key into `s` [rows, keys]: scores,
    /// `adjust` (a mask), then a softmax per row.
    func probabilities(item: Int, head: Int, firstQuery: Int, rows: Int, into s: UnsafeMutablePointer<Float>,
                       adjust: (Int, UnsafeMutablePointer<Float>) -> Void = { _, _ in }) {
        scores(item: item, head: head, firstQuery: firstQuery, rows: rows, firstKey: 0, columns: shape.keys, into: s)
        for row in 0..<rows {
            adjust(row, s + row * shape.keys)
            Softmax.row(s + row * shape.keys, count: shape.keys)
        }
    }

    /// A[rows, d'] (+)= P V' for keys firstKey... (`probabilities` in the products' precision):
    /// columns 0..<d the output rows, column d the sums of P's rows.
    func values(item: Int, head: Int, rows: Int, firstKey: Int, columns: Int, probabilities: UnsafeRawPointer,
                into accumulator: UnsafeMutablePointer<Float>, accumulates: Bool) {
        MatrixProduct.prepared(MatmulShape(
            m: rows, k: columns, n: values.width, aRowStride: columns, bRowStride: values.width, bColumnStride: 1,
            cRowStride: values.width, precision: precision, epilogue: accumulates ? .accumulate : .none))
            .run(a: probabilities, b: values.rows(item: item, head: head, firstKey: firstKey), bias: nil, c: accumulator)
    }

    /// The output rows of probabilities over every key ([rows, keys], in the products' precision).
    func attend(item: Int, head: Int, firstQuery: Int, rows: Int, probabilities: UnsafeRawPointer) {
        let product = UnsafeMutablePointer<Float>.allocate(capacity: rows * values.width)
        defer { product.deallocate() }
        self.values(item: item, head: head, rows: rows, firstKey: 0, columns: shape.keys, probabilities: probabilities,
                    into: product, accumulates: false)
        for row in 0..<rows {
            (output + queryOffset(item: item, head: head, firstQuery: firstQuery + row))
                .update(from: product + row * values.width, count: shape.headWidth)
        }
    }
}
