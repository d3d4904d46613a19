/// torch's `F.interpolate(x, size, mode="bicubic", align_corners=False)` without antialiasing,
/// as the InstructPix2Pix recipe resizes pictures for CLIP: for each output pixel the source
/// position (i + 0.5) * in / out - 0.5, Keys' cubic convolution (a = -0.75) over 4 x 4 source
/// pixels clamped at the border, weighted rows of weighted columns summed in float32 in torch's
/// order.
enum BicubicResize {
    /// Planar values [channels, height, width] -> [channels, outHeight, outWidth].
    static func resize(_ values: [Float], channels: Int, height: Int, width: Int, toHeight outHeight: Int, width outWidth: Int) -> [Float] {
        let rows = taps(input: height, output: outHeight)
        let columns = taps(input: width, output: outWidth)
        var out = [Float](repeating: 0, count: channels * outHeight * outWidth)
        for c in 0..<channels {
            let plane = c * height * width
            for y in 0..<outHeight {
                let (rowIndices, rowWeights) = rows[y]
                for x in 0..<outWidth {
                    let (columnIndices, columnWeights) = columns[x]
                    var sum: Float = 0
                    for j in 0..<4 {
                        let row = plane + rowIndices[j] * width
                        var inner = values[row + columnIndices[0]] * columnWeights[0]
                        for k in 1..<4 { inner += values[row + columnIndices[k]] * columnWeights[k] }
                        sum = j == 0 ? inner * rowWeights[0] : sum + inner * rowWeights[j]
                    }
                    out[(c * outHeight + y) * outWidth + x] = sum
                }
            }
        }
        return out
    }

    /// For each output position: its 4 source indices (clamped) and their weights.
    static func taps(input: Int, output: Int) -> [(indices: [Int], weights: [Float])] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { i in
            let real = scale * (Float(i) + 0.5) - 0.5
            let index = min(Int(real.rounded(.down)), input - 1)
            let t = min(max(real - Float(index), 0), 1)
            let weights = coefficients(t)
            return ((0..<4).map { max(min(index - 1 + $0, input - 1), 0) }, weights)
        }
    }

    /// Keys' cubic convolution weights of the 4 taps around a fractional position `t`.
    static func coefficients(_ t: Float) -> [Float] {
        let a: Float = -0.75
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        let rest = 1 - t
        return [far(t + 1), near(t), near(rest), far(rest + 1)]
    }
}
