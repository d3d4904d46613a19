import EditContract
/// y = x W^T + b over the last dimension, with torch's [out, in] weight layout, on oneDNN.
public struct Linear: Sendable {
    let weights: PackedWeights  // [out, in]
    let bias: Tensor?           // [out]

    var inputFeatures: Int { weights.shape[1] }
    var outputFeatures: Int { weights.shape[0] }

    public init(weight: Tensor, bias: Tensor?) {
        self.init(source: WeightSource(weight), bias: bias)
    }

    init(source: WeightSource, bias: Tensor?) {
        precondition(source.shape.count == 2, "linear weight must be [out, in], got \(source.shape)")
        if let bias { precondition(bias.count == source.shape[0], "linear bias of \(bias.count) for \(source.shape[0]) outputs") }
        weights = PackedWeights(source)
        self.bias = bias
    }

    /// Loads `name.weight` ([out, in]; read when first used) and, when `bias`, `name.bias`.
    init(_ weights: Weights, _ name: String, input: Int, output: Int, bias: Bool = true) throws {
        self.init(source: try weights.source(name + ".weight", shape: [output, input]),
                  bias: bias ? try weights(name + ".bias", shape: [output]) : nil)
    }

    /// The weight matrix [out, in] as float32.
    var weight: Tensor { weights.float32 }

    /// [..., in] -> [..., out]
    public func callAsFunction(_ x: Tensor, precision: Precision) -> Tensor {
        var y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outputFeatures])
        apply(x, precision: precision, into: &y, epilogue: .none)
        return y
    }

    /// residual + x W^T + b, accumulated into `residual`'s copy in one pass ([..., out]).
    func adding(_ x: Tensor, to residual: Tensor, precision: Precision) -> Tensor {
        precondition(residual.shape == Array(x.shape.dropLast()) + [outputFeatures],
                     "residual \(residual.shape) does not match the output of \(x.shape) -> \(outputFeatures)")
        var y = residual
        apply(x, precision: precision, into: &y, epilogue: .accumulate)
        return y
    }

    /// GELU(x W^T + b) * other, with the GELU and the product fused into the store ([..., out]).
    func gelu(_ x: Tensor, times other: Tensor, precision: Precision) -> Tensor {
        precondition(other.shape == Array(x.shape.dropLast()) + [outputFeatures],
                     "gate \(other.shape) does not match the output of \(x.shape) -> \(outputFeatures)")
        var y = Tensor(uninitializedShape: other.shape)
        other.withUnsafeBufferPointer { gate in
            apply(x, precision: precision, into: &y, epilogue: .geluTimes, gate: gate.baseAddress!)
        }
        return y
    }

    /// The rows `range` of this layer's outputs, as a layer of their own.
    func rows(_ range: Range<Int>) -> Linear {
        Linear(source: weights.source.rows(range), bias: bias?.slice(range))
    }

    private func apply(_ x: Tensor, precision: Precision, into y: inout Tensor, epilogue: MatmulEpilogue,
                       gate: UnsafePointer<Float>? = nil) {
        precondition(x.dim(-1) == inputFeatures, "linear expects [..., \(inputFeatures)], got \(x.shape)")
        let rows = x.count / inputFeatures
        ProductInput.with(x, precision: precision) { input in
            y.withUnsafeMutableBufferPointer { out in
                if let bias {
                    bias.withUnsafeBufferPointer { b in
                        MatrixProduct.linear(input: input, rows: rows, inputs: inputFeatures, weights: weights, outputs: outputFeatures,
                                             bias: b.baseAddress!, into: out.baseAddress!, epilogue: epilogue, gate: gate)
                    }
                } else {
                    MatrixProduct.linear(input: input, rows: rows, inputs: inputFeatures, weights: weights, outputs: outputFeatures,
                                         bias: nil, into: out.baseAddress!, epilogue: epilogue, gate: gate)
                }
            }
        }
    }
}
