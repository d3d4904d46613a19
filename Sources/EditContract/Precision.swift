/// The arithmetic of the heavy layers (convolutions, matrix products, attention without a
/// controller). Normalisation, softmax, the scheduler and the latents are float32 in both.
public enum Precision: String, Sendable, CaseIterable, Codable {
    /// Float32 throughout: the default, checked against diffusers at 1e-4.
    case fp32
    /// bfloat16 weights and activations into the products, float32 accumulation and outputs.
    case bf16
}

extension Precision: CustomStringConvertible {
    public var description: String { rawValue }
}
