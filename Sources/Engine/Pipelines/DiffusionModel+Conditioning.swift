import EditContract

/// Prompts to what the UNet is conditioned on.
extension DiffusionModel {
    /// The conditioning of `prompts` for an image of `height` x `width`. SD 1.x and 2.x: the
    /// text encoder's last hidden state. SDXL: the context of `SDXLConditioning.encode`, the
    /// second encoder's pooled projection and `size`'s time ids for every prompt, as diffusers'
    /// StableDiffusionXLPipeline builds them.
    func conditioning(_ prompts: [String], truncate: Bool, precision: Precision, size: SizeConditioning,
                      height: Int, width: Int) throws -> TextConditioning {
        let (context, pooled) = try encode(prompts, truncate: truncate, precision: precision)
        return TextConditioning(context: context, added: pooled.map {
            UNetAddedConditions(textEmbeds: $0, timeIDs: size.timeIDs(height: height, width: width, count: prompts.count))
        })
    }

    /// The context of `prompts` alone [prompts, tokens, width], for UNet calls that take no
    /// added conditions (super-resolution, inversion).
    func context(_ prompts: [String], truncate: Bool, precision: Precision) throws -> Tensor {
        try encode(prompts, truncate: truncate, precision: precision).context
    }

    /// The text encoders' outputs: the context, and SDXL's pooled projection (nil without SDXL).
    private func encode(_ prompts: [String], truncate: Bool, precision: Precision) throws -> (context: Tensor, pooled: Tensor?) {
        let ids = try prompts.map { try tokenizer.tokenize($0, truncate: truncate) }
        guard let sdxl else { return (textEncoder(ids, precision: precision), nil) }
        let (context, pooled) = try sdxl.encode(prompts, first: textEncoder.encode(ids, precision: precision), truncate: truncate, precision: precision)
        return (context, pooled)
    }
}
