import EditContract

/// Prompts to what the UNet is conditioned on.
extension DiffusionModel {
    /// The conditioning of `prompts`. SD 1.x and 2.x: the text encoder's last hidden state.
    /// SDXL: both encoders' penultimate hidden states side by side ([B, 77, w1 + w2]), the
    /// second's pooled projection, and `timeIDs` (six values) for every prompt, as diffusers'
    /// StableDiffusionXLPipeline builds them.
    public func conditioning(_ prompts: [String], truncate: Bool, precision: Precision, timeIDs: [Float]) throws -> TextConditioning {
        let ids = try prompts.map { try tokenizer.tokenize($0, truncate: truncate) }
        guard let secondText else { return TextConditioning(context: textEncoder(ids, precision: precision)) }
        let first = textEncoder.encode(ids, precision: precision)
        let second = secondText.encoder.encode(try prompts.map { try secondText.tokenizer.tokenize($0, truncate: truncate) }, precision: precision)
        guard let pooled = second.textEmbeds else {
            throw ModelConfigurationError("text_encoder_2 has no text_projection, which SDXL's UNet needs")
        }
        precondition(timeIDs.count == UNetConfiguration.TextTimeEmbedding.timeIDs, "six time ids, got \(timeIDs.count)")
        let times = Tensor(shape: [prompts.count, timeIDs.count], values: Array(Array(repeating: timeIDs, count: prompts.count).joined()))
        return TextConditioning(context: Tensor.concatenate([first.penultimateHiddenState, second.penultimateHiddenState], axis: -1),
                                added: UNetAddedConditions(textEmbeds: pooled, timeIDs: times))
    }
}
