/// A lookup table of vectors: row i of the [count, width] weight for index i.
struct Embedding: Sendable {
    let weight: Tensor

    var count: Int { weight.shape[0] }
    var width: Int { weight.shape[1] }

    init(_ weights: Weights, _ name: String, count: Int, width: Int) throws {
        weight = try weights(name + ".weight", shape: [count, width])
    }

    /// Rows for `indices`: [indices.count, width]. Indices must be in range (checked).
    func callAsFunction(_ indices: [Int]) -> Tensor {
        var result = Tensor(uninitializedShape: [indices.count, width])
        weight.withUnsafeBufferPointer { table in
            result.withUnsafeMutableBufferPointer { out in
                for (row, index) in indices.enumerated() {
                    precondition(index >= 0 && index < count, "embedding index \(index) outside 0..<\(count)")
                    (out.baseAddress! + row * width).update(from: table.baseAddress! + index * width, count: width)
                }
            }
        }
        return result
    }
}
