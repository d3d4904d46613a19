import CDNNL
import EditContract

extension Precision {
    /// Refuses a precision this CPU cannot run at speed, saying why (no silent fallback).
    public func checkSupported() throws {
        guard self == .bf16, !OneDNN.hasNativeBFloat16 else { return }
        throw PrecisionError(
            description: "precision bf16 needs a CPU that multiplies bfloat16 natively (AVX512-BF16 or AMX); this one offers "
                + "\(OneDNN.instructionSetName), where bf16 would be emulated and slower than fp32. Use --precision fp32")
    }

    /// Whether this CPU runs `precision` (fp32 always).
    public var isSupported: Bool { (try? checkSupported()) != nil }

    /// The oneDNN element type of activations and weights into a product.
    var dataType: dnnl_data_type_t { self == .fp32 ? dnnl_f32 : dnnl_bf16 }

    /// Bytes per element into a product.
    var elementSize: Int { self == .fp32 ? 4 : 2 }
}

/// A precision the CPU cannot run.
struct PrecisionError: Error, CustomStringConvertible {
    let description: String
}

/// bfloat16 values (the top half of a float32), as oneDNN reads them.
enum BFloat16 {
    /// float32 -> bfloat16, rounding to nearest even (as torch's `.to(torch.bfloat16)` and the
    /// CPU's VCVTNEPS2BF16); NaN stays NaN. Branch-free, so loops over it vectorise.
    @inline(__always)
    static func bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16
        let isNaN = bits & 0x7FFF_FFFF > 0x7F80_0000
        return UInt16(truncatingIfNeeded: isNaN ? (bits >> 16) | 0x40 : rounded)
    }

    @inline(__always)
    static func float(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Converts `count` floats into `destination` on the calling thread, in one loop that LLVM
    /// vectorises (an index computed with trapping arithmetic in the caller's loop prevents it).
    @inline(never)
    static func convertRow(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count { destination[i] = bits(source[i]) }
    }

    /// Converts `count` floats into `destination`, on the Engine's threads.
    static func convert(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<UInt16>, count: Int) {
        parallelFor(count, minimumChunk: 1 << 15) { range in
            convertRow(source + range.lowerBound, into: destination + range.lowerBound, count: range.count)
        }
    }

    /// A bfloat16 copy of `tensor`'s elements, in the same order (`mapped`: pages of its own,
    /// for copies kept as long as a model).
    static func copy(of tensor: Tensor, mapped: Bool = false) -> AlignedBuffer {
        let buffer = AlignedBuffer(byteCount: tensor.count * 2, mapped: mapped)
        tensor.withUnsafeBufferPointer { values in
            convert(values.baseAddress!, into: buffer.pointer.assumingMemoryBound(to: UInt16.self), count: values.count)
        }
        return buffer
    }
}

/// A product's input in the precision it runs at: the float32 tensor itself, or a bfloat16
/// copy of it made once for all the slabs of the product.
struct ProductInput {
    let pointer: UnsafeRawPointer
    let precision: Precision
    private let keepAlive: AnyObject?

    private init(pointer: UnsafeRawPointer, precision: Precision, keepAlive: AnyObject?) {
        self.pointer = pointer
        self.precision = precision
        self.keepAlive = keepAlive
    }

    /// bfloat16 elements already in place, owned by `keepAlive`.
    init(bfloat16 pointer: UnsafeRawPointer, keepAlive: AnyObject) {
        self.init(pointer: pointer, precision: .bf16, keepAlive: keepAlive)
    }

    /// Calls `body` with `tensor`'s elements as `precision` needs them.
    static func with<R>(_ tensor: Tensor, precision: Precision, _ body: (ProductInput) -> R) -> R {
        switch precision {
        case .fp32:
            return tensor.withUnsafeBufferPointer { values in
                body(ProductInput(pointer: UnsafeRawPointer(values.baseAddress!), precision: .fp32, keepAlive: nil))
            }
        case .bf16:
            let copy = BFloat16.copy(of: tensor)
            return withExtendedLifetime(copy) { body(ProductInput(pointer: UnsafeRawPointer(copy.pointer), precision: .bf16, keepAlive: copy)) }
        }
    }

    /// The address of element `index`.
    func advanced(by index: Int) -> UnsafeRawPointer { pointer + index * precision.elementSize }
}

/// oneDNN's version and the kernels it picks on this CPU (for benchmark and worker reports).
public var oneDNNConfiguration: String { OneDNN.configuration }
