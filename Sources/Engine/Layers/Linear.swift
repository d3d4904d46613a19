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
        var y = x.matmul(weight, transposeOther: true)
        if let bias { y.addBiasInPlace(bias, axis: -1) }
        return y
    }
}
