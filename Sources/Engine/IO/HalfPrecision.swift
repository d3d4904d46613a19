/// Conversions between Float32 and the 16-bit formats weights are stored in.
enum HalfPrecision {
    /// IEEE binary16 -> Float32 (exact).
    static func decodeFloat16(_ source: UnsafeRawPointer, into destination: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumChunk: 1 << 16) { range in
            for i in range {
                destination[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            }
        }
    }

    /// bfloat16 -> Float32 (exact: bfloat16 is the top half of a Float32).
    static func decodeBFloat16(_ source: UnsafeRawPointer, into destination: UnsafeMutablePointer<Float>, count: Int) {
        parallelFor(count, minimumChunk: 1 << 16) { range in
            for i in range {
                let bits = UInt32(source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16
                destination[i] = Float(bitPattern: bits)
            }
        }
    }

    /// Float32 -> IEEE binary16, rounding to nearest even (as torch's `.half()`).
    static func encodeFloat16(_ source: UnsafePointer<Float>, count: Int) -> [UInt16] {
        (0..<count).map { Float16(source[$0]).bitPattern }
    }
}
