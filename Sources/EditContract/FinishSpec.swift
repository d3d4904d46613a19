/// What turning one image of an edit's stage-1 output into its final picture needs (the VAE
/// decode, or the cascade's super-resolution conditioned on the image's prompt): a finish task
/// carries this, not the spec.
public struct FinishSpec: Sendable, Equatable {
    /// The model key ("default" for the embedded model).
    public var model: String
    public var precision: Precision
    public var seed: UInt64
    /// Run the model's super-resolution stage (when it has one).
    public var superResolution: Bool
    /// The image's own prompt (the source's, or one target's).
    public var prompt: String

    public init(model: String, precision: Precision, seed: UInt64, superResolution: Bool, prompt: String) {
        (self.model, self.precision, self.seed, self.superResolution, self.prompt) = (model, precision, seed, superResolution, prompt)
    }
}

extension EditSpec {
    /// What finishing image `index` (0 the source) needs.
    public func finish(index: Int) -> FinishSpec {
        FinishSpec(model: model ?? "default", precision: precision, seed: seed, superResolution: superResolution, prompt: prompts[index])
    }
}
