import EditContract

extension Attention {
    /// Keys per block of the fused path: up to this many, a block of queries takes its scores
    /// against every key at once (4 MiB of float32 scores, or 2 MiB of bfloat16 exponentials,
    /// per thread at 4096 keys: SD 1.5 at 512 px and SDXL at 1024 px); more keys go through the
    /// online softmax.
    static let fusedKeyBlock = 4096

    /// softmax(Q K^T / sqrt(d)) V with no probabilities kept: each (batch item, head, block of
    /// queries) is one unit of work. When every key fits one block, the unit computes its
    /// probabilities and multiplies them by V: in fp32 as the explicit path does (scores, then
    /// oneDNN's softmax); in bf16 as exp(scale q·k - bound) straight out of the Q K^T product,
    /// each query's bound on its scores (`KeyBoxes`) folded into the product as one more
    /// column of Q against a row of ones in K^T, so no pass over the scores finds maxima;
    /// P V's column of sums then normalises the rows. A block whose bound lay so far above
    /// some row's scores that they underflowed takes the softmax instead. Otherwise it runs
    /// through the keys a block at a time, keeping each query's running maximum and sum and
    /// rescaling its partial output whenever the maximum grows (the online softmax of flash
    /// attention), so one block of scores per thread is all that ever exists. The products run
    /// on oneDNN in `precision`: in bf16, Q, K, V and the probabilities are rounded to bfloat16,
    /// while scores, sums and the output stay float32. The work is cut by shape alone, so
    /// results do not depend on the thread count.
    /// - Parameters:
    ///   - query: [B, Nq, heads*d]
    ///   - key, value: [B, Nk, heads*d]
    ///   - largest: keys per block (more go through the online softmax)
    ///   - exponentials: whether bf16 one-block units take exp out of the product (else the
    ///     softmax, as fp32; tests compare the two)
    /// - Returns: [B, Nq, heads*d]
    static func fused(query: Tensor, key: Tensor, value: Tensor, heads: Int, precision: Precision, keyBlock largest: Int = fusedKeyBlock,
                      exponentials: Bool = true) -> Tensor {
        let shape = AttentionShape(query: query, key: key, value: value, heads: heads)
        let (block, headWidth) = (AttentionBlocks.queryBlock, shape.headWidth)
        let queryBlocks = (shape.queries + block - 1) / block
        let keyBlock = min(shape.keys, largest)
        let online = shape.keys > keyBlock
        var output = Tensor(uninitializedShape: [shape.batch, shape.queries, shape.width])
        output.withUnsafeMutableBufferPointer { o in
            let routine = AttentionBlocks(query: query, key: key, value: value, shape: shape, precision: precision,
                                          exponentiating: exponentials && precision == .bf16 && !online, output: o.baseAddress!)
            let paddedWidth = routine.values.width
            parallelFor(shape.batch * heads * queryBlocks) { units in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: block * keyBlock)
                let rounded = precision == .bf16 ? UnsafeMutablePointer<UInt16>.allocate(capacity: block * keyBlock) : nil
                // Per query: the output so far, then the sum of its probabilities (P V''s column d).
                let accumulated = UnsafeMutablePointer<Float>.allocate(capacity: online ? block * paddedWidth : 0)
                let maxima = UnsafeMutablePointer<Float>.allocate(capacity: block)
                defer {
                    scores.deallocate()
                    rounded?.deallocate()
                    accumulated.deallocate()
                    maxima.deallocate()
                }
                for unit in units {
                    let (item, head) = (unit / (heads * queryBlocks), (unit / queryBlocks) % heads)
                    let firstQuery = (unit % queryBlocks) * block
                    let rows = min(block, shape.queries - firstQuery)
                    guard online else {
                        if let rounded, routine.exponentiates {
                            routine.exponentials(item: item, head: head, firstQuery: firstQuery, rows: rows, into: rounded)
                            if routine.attend(item: item, head: head, firstQuery: firstQuery, rows: rows, probabilities: rounded,
                                              renormalizing: true, smallestSum: AttentionBlocks.smallestTrustedSum) {
                                continue
                            }
                            // A bound far above some row's scores: the block again, through the softmax.
                        }
                        // Scores, then oneDNN's softmax straight into the products' precision.
                        routine.scores(item: item, head: head, firstQuery: firstQuery, rows: rows, firstKey: 0, columns: shape.keys, into: scores)
                        let probabilities = rounded.map { UnsafeMutableRawPointer($0) } ?? UnsafeMutableRawPointer(scores)
                        RowSoftmax.prepared(.init(rows: rows, columns: shape.keys, output: precision)).run(scores, into: probabilities)
                        routine.attend(item: item, head: head, firstQuery: firstQuery, rows: rows, probabilities: UnsafeRawPointer(probabilities),
                                       renormalizing: rounded != nil)
                        continue
                    }
                    maxima.initialize(repeating: -.infinity, count: rows)
                    accumulated.initialize(repeating: 0, count: rows * paddedWidth)
                    var firstKey = 0
                    while firstKey < shape.keys {
                        let columns = min(keyBlock, shape.keys - firstKey)
                        routine.scores(item: item, head: head, firstQuery: firstQuery, rows: rows, firstKey: firstKey, columns: columns, into: scores)
                        for row in 0..<rows {
                            let line = scores + row * columns
                            let maximum = max(maxima[row], VectorMath.maximum(line, count: columns))
                            let correction = VectorMath.exp(maxima[row] - maximum)
                            // exp, straight into bfloat16 for the product where it runs in bf16.
                            if let rounded {
                                let bits = rounded + row * columns
                                for i in 0..<columns { bits[i] = BFloat16.bits(VectorMath.exp(line[i] - maximum)) }
                            } else {
                                for i in 0..<columns { line[i] = VectorMath.exp(line[i] - maximum) }
                            }
                            maxima[row] = maximum
                            // The partial output and its sum shrink as the maximum grows.
                            let partial = accumulated + row * paddedWidth
                            for i in 0...headWidth { partial[i] *= correction }
                        }
                        routine.values(item: item, head: head, rows: rows, firstKey: firstKey, columns: columns,
                                       probabilities: rounded.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(scores),
                                       into: accumulated, accumulates: true)
                        firstKey += columns
                    }
                    for row in 0..<rows {
                        let partial = accumulated + row * paddedWidth
                        let inverse = 1 / partial[headWidth]
                        let target = o.baseAddress! + routine.queryOffset(item: item, head: head, firstQuery: firstQuery + row)
                        for i in 0..<headWidth { target[i] = partial[i] * inverse }
                    }
                }
            }
        }
        return output
    }
}
