extension Conv2dKernel {
    /// Loads `name.weight` ([out, in, k, k]; read when first used) and `name.bias`.
    init(_ weights: Weights, _ name: String, input: Int, output: Int, kernel: Int,
         stride: Int = 1, padding: Padding2D? = nil, bias: Bool = true) throws {
        self.init(source: try weights.source(name + ".weight", shape: [output, input, kernel, kernel]),
                  bias: bias ? try weights(name + ".bias", shape: [output]) : nil,
                  stride: stride, padding: padding ?? .uniform(kernel / 2))
    }
}
