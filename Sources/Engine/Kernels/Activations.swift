import Foundation

/// Activation functions, vectorised where the math library's scalar calls would dominate.
extension Tensor {
    /// x * sigmoid(x).
    func silu() -> Tensor { mapElementsVectorised(VectorMath.silu) }

    /// x * sigmoid(1.702 x), the activation of OpenAI's CLIP ("quick_gelu").
    func quickGELU() -> Tensor { mapElementsVectorised { $0 / (1 + VectorMath.exp(-1.702 * $0)) } }

    /// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as torch's default `gelu`.
    func gelu() -> Tensor { mapElementsVectorised(VectorMath.gelu) }

    /// Applies an inlinable, branch-free function in parallel blocks the compiler vectorises.
    @inline(__always)
    func mapElementsVectorised(_ transform: (Float) -> Float) -> Tensor {
        var result = Tensor(uninitializedShape: shape)
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                parallelFor(count, minimumChunk: 1 << 14) { range in
                    for i in range { d[i] = transform(s[i]) }
                }
            }
        }
        return result
    }
}
