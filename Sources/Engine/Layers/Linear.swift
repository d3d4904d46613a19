/// y = x W^T + b over the last dimension, with torch's [out, in] weight layout.
public struct Linear: Sendable {
    let weight: Tensor  // [out, in]
    let bias: Tensor?   // [out]

    public var inputFeatures: Int { weight.shape[1] }
    public var outputFeatures: Int { weight.shape[0] }

    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        self.weight = weight
        self.bias = bias
    }

    /// Loads `name.weight` ([out, in]) and, when `bias`, `name.bias`.
    public init(_ weights: Weights, _ name: String, input: Int, output: Int, bias: Bool = true) throws {
        self.init(weight: try weights(name + ".weight", shape: [output, input]),
                  bias: bias ? try weights(name + ".bias", shape: [output]) : nil)
    }

    /// [..., in] -> [..., out]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.dim(-1) == inputFeatures, "linear expects [..., \(inputFeatures)], got \(x.shape)")
        let rows = x.count / inputFeatures
        var y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outputFeatures])
        y.withUnsafeMutableBufferPointer { out in
            // Start from the bias in every row and accumulate the product onto it (one pass fewer).
            if let bias {
                bias.withUnsafeBufferPointer { b in
                    for row in 0..<rows { (out.baseAddress! + row * outputFeatures).update(from: b.baseAddress!, count: outputFeatures) }
                }
            }
            x.withUnsafeBufferPointer { input in
                weight.withUnsafeBufferPointer { w in
                    BLAS.parallelGEMM(transposeB: true, m: rows, n: outputFeatures, k: inputFeatures,
                                      a: input.baseAddress!, lda: inputFeatures, b: w.baseAddress!, ldb: inputFeatures,
                                      beta: bias == nil ? 0 : 1, c: out.baseAddress!, ldc: outputFeatures)
                }
            }
        }
        return y
    }
}
