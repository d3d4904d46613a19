/// SDXL's added conditions of a UNet call: the pooled, projected text embedding of the second
/// text encoder and the six micro-conditioning time ids (original height and width, crop top
/// and left, target height and width), one row per sample.
public struct UNetAddedConditions: Sendable {
    /// [B, pooledWidth]
    var textEmbeds: Tensor
    /// [B, 6]
    var timeIDs: Tensor

    public init(textEmbeds: Tensor, timeIDs: Tensor) {
        precondition(textEmbeds.rank == 2 && timeIDs.rank == 2 && timeIDs.shape[1] == UNetConfiguration.TextTimeEmbedding.timeIDs
                     && textEmbeds.shape[0] == timeIDs.shape[0],
                     "added conditions are [B, pooled] text embeddings and [B, 6] time ids, got \(textEmbeds.shape) and \(timeIDs.shape)")
        self.textEmbeds = textEmbeds
        self.timeIDs = timeIDs
    }

    /// The MLP's input, [B, pooled + 6 * timeIDWidth]: each row's text embedding followed by
    /// the sinusoidal features of its time ids (diffusers' `add_time_proj`, then the concat).
    func embeddingInput(_ embedding: UNetConfiguration.TextTimeEmbedding, flipSinToCos: Bool, shift: Float) -> Tensor {
        let batch = textEmbeds.shape[0], pooled = textEmbeds.shape[1]
        let features = sinusoidalEmbedding(timeIDs.scalars, width: embedding.timeIDWidth, flipSinToCos: flipSinToCos, shift: shift).scalars
        let text = textEmbeds.scalars
        let timeWidth = UNetConfiguration.TextTimeEmbedding.timeIDs * embedding.timeIDWidth
        var values = [Float]()
        values.reserveCapacity(batch * (pooled + timeWidth))
        for row in 0..<batch {
            values += text[(row * pooled)..<((row + 1) * pooled)]
            values += features[(row * timeWidth)..<((row + 1) * timeWidth)]
        }
        return Tensor(shape: [batch, pooled + timeWidth], values: values)
    }
}
