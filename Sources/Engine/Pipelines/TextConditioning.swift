/// What the UNet is conditioned on for a batch of prompts: the per-token context, and for SDXL
/// the added conditions (the second encoder's pooled projection and the size time ids).
struct TextConditioning: Sendable {
    /// [B, tokens, crossAttentionWidth]
    var context: Tensor
    var added: UNetAddedConditions?

    init(context: Tensor, added: UNetAddedConditions? = nil) {
        self.context = context
        self.added = added
    }

    /// Prompts in the batch.
    var count: Int { context.shape[0] }

    /// The batch repeated `times` times (one negative prompt for every prompt).
    func repeated(_ times: Int) -> TextConditioning {
        TextConditioning(context: context.repeated(times),
                         added: added.map { UNetAddedConditions(textEmbeds: $0.textEmbeds.repeated(times), timeIDs: $0.timeIDs.repeated(times)) })
    }

    /// Batches one after another (guidance's unconditional half, then its conditional half).
    static func concatenate(_ parts: [TextConditioning]) -> TextConditioning {
        let added = parts.compactMap(\.added)
        precondition(added.isEmpty || added.count == parts.count, "conditionings with and without added conditions")
        return TextConditioning(
            context: Tensor.concatenate(parts.map(\.context), axis: 0),
            added: added.isEmpty ? nil : UNetAddedConditions(textEmbeds: Tensor.concatenate(added.map(\.textEmbeds), axis: 0),
                                                              timeIDs: Tensor.concatenate(added.map(\.timeIDs), axis: 0)))
    }

    /// The same shapes, all zero (SDXL's unconditional half with no negative prompt, as
    /// diffusers' `force_zeros_for_empty_prompt`).
    var zeroed: TextConditioning {
        TextConditioning(context: .zeros(context.shape),
                         added: added.map { UNetAddedConditions(textEmbeds: .zeros($0.textEmbeds.shape), timeIDs: $0.timeIDs) })
    }
}
