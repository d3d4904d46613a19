extension Tensor {
    /// Nearest-neighbour upsampling of [N, C, H, W] by an integer factor (2 in the UNets).
    public func upsampledNearest(factor: Int = 2) -> Tensor {
        precondition(rank == 4, "upsampling needs [N, C, H, W], got \(shape)")
        let planes = shape[0] * shape[1], h = shape[2], w = shape[3]
        let outW = w * factor
        var result = Tensor(uninitializedShape: [shape[0], shape[1], h * factor, outW])
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(planes * h, minimumChunk: 16) { rows in
                    for row in rows {
                        let input = s + row * w
                        let output = d + row * factor * outW
                        for x in 0..<w {
                            let value = input[x]
                            for f in 0..<factor { output[x * factor + f] = value }
                        }
                        for f in 1..<factor { (output + f * outW).update(from: output, count: outW) }
                    }
                }
            }
        }
        return result
    }
}
