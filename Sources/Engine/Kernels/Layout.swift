/// Copies that change how elements are laid out: concatenation, slicing, transposition.
extension Tensor {
    /// Joins tensors along dimension `axis`; all other dimensions must agree.
    static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "nothing to concatenate")
        let first = parts[0]
        let axis = axis < 0 ? first.rank + axis : axis
        for part in parts {
            precondition(part.rank == first.rank
                && part.shape[..<axis] == first.shape[..<axis]
                && part.shape[(axis + 1)...] == first.shape[(axis + 1)...],
                "cannot concatenate \(part.shape) with \(first.shape) along axis \(axis)")
        }
        let outer = first.shape[..<axis].reduce(1, *)
        let inner = first.shape[(axis + 1)...].reduce(1, *)
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        var result = Tensor(uninitializedShape: shape)
        let outRow = shape[axis] * inner
        result.withUnsafeMutableBufferPointer { dst in
            var offset = 0
            for part in parts {
                let block = part.shape[axis] * inner
                part.withUnsafeBufferPointer { src in
                    for o in 0..<outer {
                        (dst.baseAddress! + o * outRow + offset).update(from: src.baseAddress! + o * block, count: block)
                    }
                }
                offset += block
            }
        }
        return result
    }

    /// Elements `range` of dimension `axis` (a copy).
    func slice(_ range: Range<Int>, axis: Int = 0) -> Tensor {
        let axis = axis < 0 ? rank + axis : axis
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis],
                     "slice \(range) out of bounds for dimension \(axis) of \(shape)")
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        var newShape = shape
        newShape[axis] = range.count
        if outer == 1 && range.count == shape[axis] { return self }
        var result = Tensor(uninitializedShape: newShape)
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let block = range.count * inner
                for o in 0..<outer {
                    (dst.baseAddress! + o * block).update(
                        from: src.baseAddress! + (o * shape[axis] + range.lowerBound) * inner, count: block)
                }
            }
        }
        return result
    }

    /// Splits dimension `axis` into `parts` equal pieces.
    func chunked(_ parts: Int, axis: Int) -> [Tensor] {
        let extent = dim(axis)
        precondition(extent % parts == 0, "dimension \(extent) does not split into \(parts)")
        let size = extent / parts
        return (0..<parts).map { slice($0 * size..<($0 + 1) * size, axis: axis) }
    }

    /// Swaps the last two dimensions: [..., a, b] -> [..., b, a].
    func transposedLastTwo() -> Tensor {
        precondition(rank >= 2, "transpose needs a matrix, got \(shape)")
        let a = dim(-2), b = dim(-1)
        let batch = count / (a * b)
        var result = Tensor(uninitializedShape: Array(shape.dropLast(2)) + [b, a])
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                // Tiles keep both reads and writes within cache lines.
                let tile = 32
                parallelFor(batch * ((a + tile - 1) / tile)) { jobs in
                    for job in jobs {
                        let n = job / ((a + tile - 1) / tile)
                        let i0 = (job % ((a + tile - 1) / tile)) * tile
                        let sb = s + n * a * b, db = d + n * a * b
                        var j0 = 0
                        while j0 < b {
                            for i in i0..<min(i0 + tile, a) {
                                for j in j0..<min(j0 + tile, b) { db[j * a + i] = sb[i * b + j] }
                            }
                            j0 += tile
                        }
                    }
                }
            }
        }
        return result
    }

    /// Repeats the tensor `times` times along a new or existing leading dimension:
    /// [n, ...] -> [n * times, ...], each item copied `times` times consecutively when
    /// `interleaved`, or the whole batch repeated `times` times otherwise.
    func repeated(_ times: Int, interleaved: Bool = false) -> Tensor {
        let items = shape[0], inner = count / max(shape[0], 1)
        var newShape = shape
        newShape[0] = items * times
        var result = Tensor(uninitializedShape: newShape)
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                for r in 0..<times {
                    for i in 0..<items {
                        let target = interleaved ? (i * times + r) : (r * items + i)
                        (dst.baseAddress! + target * inner).update(from: src.baseAddress! + i * inner, count: inner)
                    }
                }
            }
        }
        return result
    }
}
