/// Vectorisable transcendental functions. Each is straight-line arithmetic on one Float (no
/// calls, no branches), so LLVM's loop vectoriser turns loops over them into AVX code; the C
/// library's scalar `expf` would otherwise dominate softmax, SiLU and GELU.
enum VectorMath {
    /// e^x with a relative error below 2e-7 on [-87, 88]; 0 below -87.3, e^88 above 88.
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        // e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln 2 / 2; e^r by a degree-6
        // minimax polynomial (Cephes' expf coefficients), ln 2 split in two for exact reduction.
        // Adding 1.5 * 2^23 rounds to an integer and leaves n in the low mantissa bits.
        let clamped = Swift.min(Swift.max(x, -87.3), 88.0)
        let shifted = clamped * 1.44269504088896341 + 12582912.0
        let n = shifted - 12582912.0
        var r = clamped - n * 0.693359375
        r = r + n * 2.12194440e-4
        // Horner steps as fused multiply-adds (c + p * r in one rounding).
        var p: Float = 1.9875691500e-4
        p = Float(1.3981999507e-3).addingProduct(p, r)
        p = Float(8.3334519073e-3).addingProduct(p, r)
        p = Float(4.1665795894e-2).addingProduct(p, r)
        p = Float(1.6666665459e-1).addingProduct(p, r)
        p = Float(5.0000001201e-1).addingProduct(p, r)
        let er = (r + 1).addingProduct(p, r * r)
        let scale = Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
        return x < -87.3 ? 0 : er * scale
    }

    /// x / (1 + e^-x)
    @inline(__always)
    static func silu(_ x: Float) -> Float { x / (1 + exp(-x)) }

    /// erf(x) with an absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26:
    /// 1 - t P(t) e^(-x^2) with t = 1 / (1 + 0.3275911 |x|)).
    @inline(__always)
    static func erf(_ x: Float) -> Float {
        let z = Swift.abs(x)
        let t = 1 / (1 + 0.3275911 * z)
        var p: Float = 1.061405429
        p = Float(-1.453152027).addingProduct(p, t)
        p = Float(1.421413741).addingProduct(p, t)
        p = Float(-0.284496736).addingProduct(p, t)
        p = Float(0.254829592).addingProduct(p, t)
        let magnitude = 1 - p * t * exp(-z * z)
        return x < 0 ? -magnitude : magnitude
    }

    /// 0.5 x (1 + erf(x / sqrt 2)): the exact (erf) GELU.
    @inline(__always)
    static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erf(x * 0.70710678118654752)) }

    /// Sum of `count` floats with 16 partial sums (fast and more accurate than one running sum).
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        let raw = UnsafeRawPointer(x)
        var partial = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 16 <= count { partial += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self); i += 16 }
        var total = partial.sum()
        while i < count { total += x[i]; i += 1 }
        return total
    }

    /// Largest of `count` floats (-inf for none).
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        let raw = UnsafeRawPointer(x)
        var partial = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i + 16 <= count {
            // `replace(with:where:)` compiles to vector compare+blend; `pointwiseMax` did not.
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            partial.replace(with: v, where: v .> partial)
            i += 16
        }
        var result = partial.max()
        while i < count { result = Swift.max(result, x[i]); i += 1 }
        return result
    }
}
