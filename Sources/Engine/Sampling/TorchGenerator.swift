import Foundation

/// Reproduces `torch.randn` on the CPU: torch's MT19937 engine and its two ways of turning
/// uniforms into normals, so that a seed gives the starting noise diffusers would use.
public struct TorchGenerator: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624
    /// The second value of a scalar-path Box-Muller pair, kept for the next draw as torch does.
    private var cachedNormal: Double?

    /// `torch.manual_seed(seed)` / `torch.Generator().manual_seed(seed)`: MT19937 seeded with
    /// the low 32 bits.
    public init(seed: UInt64) {
        state[0] = UInt32(truncatingIfNeeded: seed)
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    /// The next 32 random bits.
    mutating func next32() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
        }
        index = 0
    }

    /// A Float32 uniform in [0, 1) from 24 random bits.
    mutating func uniformFloat() -> Float { Float(next32() & 0xFF_FFFF) * Float(1.0 / 16_777_216.0) }

    /// A Double uniform in [0, 1) from 53 of 64 random bits (first draw high).
    mutating func uniformDouble() -> Double {
        let high = UInt64(next32()), low = UInt64(next32())
        return Double(((high << 32) | low) & ((1 << 53) - 1)) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `torch.randn(shape)`: 16 or more values use torch's vectorised fill (uniforms for
    /// all, Box-Muller in blocks of 16, the last 16 redrawn when the count is not a multiple of
    /// 16); fewer use the scalar Double path, one cached pair value at a time.
    public mutating func normal(_ shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        if count >= 16 {
            for i in 0..<count { values[i] = uniformFloat() }
            var start = 0
            while start + 16 <= count {
                Self.boxMuller16(&values, at: start)
                start += 16
            }
            if count % 16 != 0 {
                let tail = count - 16
                for i in tail..<count { values[i] = uniformFloat() }
                Self.boxMuller16(&values, at: tail)
            }
        } else {
            for i in 0..<count {
                if let cached = cachedNormal {
                    values[i] = Float(cached)
                    cachedNormal = nil
                    continue
                }
                let u1 = uniformDouble(), u2 = uniformDouble()
                let radius = (-2 * Foundation.log1p(-u2)).squareRoot()
                let theta = 2 * Double.pi * u1
                cachedNormal = radius * Foundation.sin(theta)
                values[i] = Float(radius * Foundation.cos(theta))
            }
        }
        return Tensor(shape: shape, values: values)
    }

    /// Box-Muller on 16 uniforms: the first 8 give radii, the last 8 angles.
    private static func boxMuller16(_ values: inout [Float], at start: Int) {
        for j in 0..<8 {
            let u1 = 1 - values[start + j]
            let u2 = values[start + j + 8]
            let radius = (-2 * Foundation.log(u1)).squareRoot()
            let theta = Float(2 * Double.pi) * u2
            values[start + j] = radius * Foundation.cos(theta)
            values[start + j + 8] = radius * Foundation.sin(theta)
        }
    }
}
