import EditContract
/// A tensor as a product (a convolution) reads it: float32, or bfloat16 written directly by the
/// layer before it (a GroupNorm, a nearest upsample) when the product runs in bf16, so that the
/// float32 form of that activation never exists. At 512 px the VAE decoder's activations are
/// hundreds of MB each; skipping the float32 copy lowers a bf16 edit's peak memory and saves a
/// pass over memory per convolution.
struct ProductOperand {
    enum Storage {
        case float32(Tensor)
        /// bfloat16 elements in the order of `shape`.
        case bfloat16(AlignedBuffer)
    }

    let shape: [Int]
    let storage: Storage

    init(_ tensor: Tensor) {
        shape = tensor.shape
        storage = .float32(tensor)
    }

    /// bfloat16 values of `shape`, written row by row by `fill(rows, destination)` on the
    /// Engine's threads: `rows` indexes the leading `rowCount` rows of `rowLength` elements.
    init(bfloat16Shape shape: [Int], rows rowCount: Int,
         fill: (Range<Int>, UnsafeMutablePointer<UInt16>) -> Void) {
        let count = shape.reduce(1, *)
        let buffer = AlignedBuffer(byteCount: count * 2)
        let destination = buffer.pointer.assumingMemoryBound(to: UInt16.self)
        parallelFor(rowCount, minimumChunk: max(1, (1 << 14) / max(count / max(rowCount, 1), 1))) { rows in
            fill(rows, destination)
        }
        self.shape = shape
        storage = .bfloat16(buffer)
    }
}

extension ProductInput {
    /// Calls `body` with `operand`'s elements as `precision` needs them (converting float32 to
    /// bfloat16 once when they are not already).
    static func with<R>(_ operand: ProductOperand, precision: Precision, _ body: (ProductInput) -> R) -> R {
        switch operand.storage {
        case .float32(let tensor):
            return with(tensor, precision: precision, body)
        case .bfloat16(let buffer):
            precondition(precision == .bf16, "a bfloat16 operand read by a \(precision) product")
            return withExtendedLifetime(buffer) { body(ProductInput(bfloat16: UnsafeRawPointer(buffer.pointer), keepAlive: buffer)) }
        }
    }
}
