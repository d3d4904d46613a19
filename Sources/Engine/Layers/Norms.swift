import EditContract
/// GroupNorm with learned per-channel scale and shift.
struct GroupNorm: Sendable {
    let groups: Int
    let epsilon: Float
    let weight: Tensor
    let bias: Tensor

    init(_ weights: Weights, _ name: String, groups: Int, channels: Int, epsilon: Float) throws {
        guard channels % groups == 0 else {
            throw ModelConfigurationError("GroupNorm '\(weights.prefix)\(name)': \(channels) channels do not split into \(groups) groups")
        }
        self.groups = groups
        self.epsilon = epsilon
        weight = try weights(name + ".weight", shape: [channels])
        bias = try weights(name + ".bias", shape: [channels])
    }

    /// [N, C, ...] -> same, optionally followed by SiLU in the same pass.
    func callAsFunction(_ x: Tensor, activation: NormalizationActivation = .none) -> Tensor {
        x.groupNorm(groups: groups, weight: weight, bias: bias, epsilon: epsilon, activation: activation)
    }

    /// The same, as the input of a product at `precision` (bfloat16 written directly in bf16).
    func operand(_ x: Tensor, activation: NormalizationActivation = .none, precision: Precision) -> ProductOperand {
        x.groupNormOperand(groups: groups, weight: weight, bias: bias, epsilon: epsilon, activation: activation, precision: precision)
    }
}

/// LayerNorm over the last dimension.
struct LayerNorm: Sendable {
    let epsilon: Float
    let weight: Tensor
    let bias: Tensor

    init(_ weights: Weights, _ name: String, width: Int, epsilon: Float) throws {
        self.epsilon = epsilon
        weight = try weights(name + ".weight", shape: [width])
        bias = try weights(name + ".bias", shape: [width])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        x.layerNorm(weight: weight, bias: bias, epsilon: epsilon)
    }
}

/// A configuration that cannot describe a valid model.
struct ModelConfigurationError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
