import Foundation

/// Element-wise arithmetic, broadcasting only in the forms the models use.
extension Tensor {
    /// Applies `transform` to every element, in parallel.
    func mapElements(_ transform: (Float) -> Float) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(count, minimumChunk: 1 << 15) { range in
                    for i in range { d[i] = transform(s[i]) }
                }
            }
        }
        return result
    }

    /// Combines two tensors of the same shape element by element, in parallel.
    func zipElements(_ other: Tensor, _ combine: (Float, Float) -> Float) -> Tensor {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        var result = Tensor(uninitializedShape: shape)
        withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                result.withUnsafeMutableBufferPointer { dst in
                    let pa = a.baseAddress!, pb = b.baseAddress!, d = dst.baseAddress!
                    parallelFor(count, minimumChunk: 1 << 15) { range in
                        for i in range { d[i] = combine(pa[i], pb[i]) }
                    }
                }
            }
        }
        return result
    }

    static func + (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipElements(rhs, +) }
    static func - (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipElements(rhs, -) }
    static func * (lhs: Tensor, rhs: Tensor) -> Tensor { lhs.zipElements(rhs, *) }
    static func * (lhs: Tensor, rhs: Float) -> Tensor { lhs.mapElements { $0 * rhs } }
    static func * (lhs: Float, rhs: Tensor) -> Tensor { rhs.mapElements { lhs * $0 } }
    static func + (lhs: Tensor, rhs: Float) -> Tensor { lhs.mapElements { $0 + rhs } }
    static func / (lhs: Tensor, rhs: Float) -> Tensor { lhs.mapElements { $0 / rhs } }

    /// `self += other * scale`, in place.
    mutating func addScaled(_ other: Tensor, scale: Float = 1) {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        other.withUnsafeBufferPointer { b in
            withUnsafeMutableBufferPointer { a in
                let pa = a.baseAddress!, pb = b.baseAddress!
                parallelFor(a.count, minimumChunk: 1 << 15) { range in
                    for i in range { pa[i] += scale * pb[i] }
                }
            }
        }
    }

    /// Adds `bias[c]` to every element of channel `c`, where channels are dimension `axis`
    /// (1 for NCHW, -1 for row vectors).
    func addingBias(_ bias: Tensor, axis: Int) -> Tensor {
        var result = self
        result.addBiasInPlace(bias, axis: axis)
        return result
    }

    /// In-place form of `addingBias`.
    mutating func addBiasInPlace(_ bias: Tensor, axis: Int) {
        let axis = axis < 0 ? rank + axis : axis
        let channels = shape[axis]
        precondition(bias.count == channels, "bias of \(bias.count) for \(channels) channels")
        let inner = shape[(axis + 1)...].reduce(1, *)
        let outer = count / (channels * inner)
        bias.withUnsafeBufferPointer { b in
            withUnsafeMutableBufferPointer { x in
                let px = x.baseAddress!, pb = b.baseAddress!
                parallelFor(outer * channels, minimumChunk: max(1, 4096 / max(inner, 1))) { rows in
                    for row in rows {
                        let value = pb[row % channels]
                        let start = px + row * inner
                        for i in 0..<inner { start[i] += value }
                    }
                }
            }
        }
    }

    /// Largest absolute element-wise difference (for tests and reports).
    /// The root mean square of the difference (a steadier measure of an arithmetic's error than
    /// its largest element).
    public func rmsDifference(_ other: Tensor) -> Float {
        precondition(count == other.count, "sizes differ: \(shape) vs \(other.shape)")
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                var total: Double = 0
                for i in 0..<a.count { let d = Double(a[i] - b[i]); total += d * d }
                return Float((total / Double(max(1, a.count))).squareRoot())
            }
        }
    }

    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(count == other.count, "sizes differ: \(shape) vs \(other.shape)")
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                var worst: Float = 0
                for i in 0..<a.count {
                    let d = abs(a[i] - b[i])
                    if d > worst || d.isNaN { worst = d.isNaN ? .infinity : d }
                }
                return worst
            }
        }
    }

    /// Largest absolute element (the scale used for relative error bounds).
    public var maxAbs: Float {
        withUnsafeBufferPointer { $0.reduce(0) { max($0, abs($1)) } }
    }

    /// Whether no element is NaN or infinite.
    var allFinite: Bool {
        withUnsafeBufferPointer { $0.allSatisfy(\.isFinite) }
    }

    /// Arithmetic mean of all elements.
    var mean: Float {
        withUnsafeBufferPointer { b in Float(b.reduce(0.0) { $0 + Double($1) } / Double(max(b.count, 1))) }
    }
}
