import EditContract

extension Attention {
    /// Keys per block of the fused path.
    static let fusedKeyBlock = 1024

    /// softmax(Q K^T / sqrt(d)) V with no probabilities kept: each (batch item, head, block of
    /// queries) is one unit of work. When every key fits one block, the unit computes its
    /// probabilities as the explicit path does and multiplies them by V. Otherwise it runs
    /// through the keys a block at a time, keeping each query's running maximum and sum and
    /// rescaling its partial output whenever the maximum grows (the online softmax of flash
    /// attention), so one block of scores per thread is all that ever exists. The products run
    /// on oneDNN in `precision`: in bf16, Q, K, V and the probabilities are rounded to bfloat16,
    /// while scores, softmax and the output stay float32. The work is cut by shape alone, so
    /// results do not depend on the thread count.
    /// - Parameters:
    ///   - query: [B, Nq, heads*d]
    ///   - key, value: [B, Nk, heads*d]
    /// - Returns: [B, Nq, heads*d]
    static func fused(query: Tensor, key: Tensor, value: Tensor, heads: Int, precision: Precision) -> Tensor {
        let shape = AttentionShape(query: query, key: key, value: value, heads: heads)
        let (block, headWidth) = (AttentionBlocks.queryBlock, shape.headWidth)
        let queryBlocks = (shape.queries + block - 1) / block
        let keyBlock = min(shape.keys, fusedKeyBlock)
        let online = shape.keys > keyBlock
        var output = Tensor(uninitializedShape: [shape.batch, shape.queries, shape.width])
        let paddedValues = PaddedValues(value, shape: shape, precision: precision)
        let paddedWidth = paddedValues.width
        ProductInput.with(query, precision: precision) { q in
        ProductInput.with(key, precision: precision) { k in
        output.withUnsafeMutableBufferPointer { o in
            let routine = AttentionBlocks(shape: shape, precision: precision, query: q, key: k, values: paddedValues, output: o.baseAddress!)
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
                /// The probabilities as the products take them.
                func operand(_ count: Int) -> UnsafeRawPointer {
                    guard let rounded else { return UnsafeRawPointer(scores) }
                    for i in 0..<count { rounded[i] = BFloat16.bits(scores[i]) }
                    return UnsafeRawPointer(rounded)
                }
                for unit in units {
                    let (item, head) = (unit / (heads * queryBlocks), (unit / queryBlocks) % heads)
                    let firstQuery = (unit % queryBlocks) * block
                    let rows = min(block, shape.queries - firstQuery)
                    guard online else {
                        routine.probabilities(item: item, head: head, firstQuery: firstQuery, rows: rows, into: scores)
                        routine.attend(item: item, head: head, firstQuery: firstQuery, rows: rows, probabilities: operand(rows * keyBlock))
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
        }
        }
        return output
    }
}
