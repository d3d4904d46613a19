import EditContract
/// One down level: ResNet blocks (each followed by a transformer in cross-attention levels),
/// then a stride-2 convolution unless it is the last level. Channels-last throughout.
struct UNetDownBlock: Sendable {
    let resnets: [ResnetBlock2D]
    let attentions: [SpatialTransformer]
    let downsample: Downsample2D?

    /// Output of each layer and of the downsampler: the skips the up path consumes.
    func callAsFunction(_ x: Tensor, time: Tensor, context: Tensor, router: AttentionRouter, precision: Precision) -> (Tensor, [Tensor]) {
        var x = x
        var skips: [Tensor] = []
        for (i, resnet) in resnets.enumerated() {
            x = resnet(x, activatedTime: time, precision: precision)
            if i < attentions.count { x = attentions[i](x, context: context, place: .down, router: router, precision: precision) }
            skips.append(x)
        }
        if let downsample {
            x = downsample(x, precision: precision)
            skips.append(x)
        }
        return (x, skips)
    }
}

/// The middle: ResNet, transformer, ResNet.
struct UNetMidBlock: Sendable {
    let first, second: ResnetBlock2D
    let attention: SpatialTransformer

    func callAsFunction(_ x: Tensor, time: Tensor, context: Tensor, router: AttentionRouter, precision: Precision) -> Tensor {
        let h = attention(first(x, activatedTime: time, precision: precision), context: context, place: .mid, router: router, precision: precision)
        return second(h, activatedTime: time, precision: precision)
    }
}

/// One up level: for each layer, concatenate the matching skip, ResNet (and transformer), then
/// upsample to the next skip's size unless it is the last level.
struct UNetUpBlock: Sendable {
    let resnets: [ResnetBlock2D]
    let attentions: [SpatialTransformer]
    let upsample: Upsample2D?

    func callAsFunction(_ x: Tensor, skips: inout [Tensor], time: Tensor, context: Tensor, router: AttentionRouter,
                        precision: Precision) -> Tensor {
        var x = x
        for (i, resnet) in resnets.enumerated() {
            guard let skip = skips.popLast() else { preconditionFailure("the up path ran out of skip connections") }
            x = resnet(Tensor.concatenate([x, skip], axis: 3), activatedTime: time, precision: precision)
            if i < attentions.count { x = attentions[i](x, context: context, place: .up, router: router, precision: precision) }
        }
        if let upsample, let next = skips.last {
            x = upsample(x, size: (next.shape[1], next.shape[2]), precision: precision)
        }
        return x
    }
}
