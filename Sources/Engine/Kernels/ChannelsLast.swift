/// Between torch's channels-first images ([N, C, H, W], the layout of the sampler's latents and
/// of pictures) and the channels-last layout ([N, H, W, C]) the models run in: oneDNN's fastest
/// convolutions read it, and a transformer's tokens are its rows with no transposition.
extension Tensor {
    /// [N, C, H, W] -> [N, H, W, C]
    func channelsLast() -> Tensor {
        precondition(rank == 4, "channelsLast needs [N, C, H, W], got \(shape)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        return reshaped([n, c, h * w]).transposedLastTwo().reshaped([n, h, w, c])
    }

    /// [N, H, W, C] -> [N, C, H, W]
    func channelsFirst() -> Tensor {
        precondition(rank == 4, "channelsFirst needs [N, H, W, C], got \(shape)")
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        return reshaped([n, h * w, c]).transposedLastTwo().reshaped([n, c, h, w])
    }

    /// Adds `bias[n, c]` to channel c of every position of item n, for channels-last
    /// [N, ..., C] (the time-embedding projection a ResNet block adds).
    mutating func addItemChannelBias(_ bias: Tensor) {
        let (items, channels) = (shape[0], shape[rank - 1])
        precondition(bias.shape == [items, channels], "item-channel bias must be [\(items), \(channels)], got \(bias.shape)")
        let positions = count / (items * channels)
        bias.withUnsafeBufferPointer { b in
            withUnsafeMutableBufferPointer { x in
                let px = x.baseAddress!, pb = b.baseAddress!
                parallelFor(items * positions, minimumChunk: max(1, 4096 / channels)) { rows in
                    for row in rows {
                        let values = pb + (row / positions) * channels, start = px + row * channels
                        for c in 0..<channels { start[c] += values[c] }
                    }
                }
            }
        }
    }
}
