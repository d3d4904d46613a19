/// Numerically stable softmax over rows.
enum Softmax {
    /// Replaces each of `rows` rows of `columns` values by its softmax: exp(x - max) / sum.
    static func rowsInPlace(_ data: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        parallelFor(rows, minimumChunk: max(1, 8192 / max(columns, 1))) { range in
            for row in range { self.row(data + row * columns, count: columns) }
        }
    }

    @inline(__always)
    static func row(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = VectorMath.maximum(x, count: count)
        if maximum == -.infinity { maximum = 0 }  // a fully masked row stays finite
        for i in 0..<count { x[i] = VectorMath.exp(x[i] - maximum) }
        let inverse = 1 / VectorMath.sum(x, count: count)
        for i in 0..<count { x[i] *= inverse }
    }
}

extension Tensor {
    /// Softmax over the last dimension.
    func softmax() -> Tensor {
        var result = self
        let columns = dim(-1)
        result.withUnsafeMutableBufferPointer { Softmax.rowsInPlace($0.baseAddress!, rows: count / columns, columns: columns) }
        return result
    }
}
