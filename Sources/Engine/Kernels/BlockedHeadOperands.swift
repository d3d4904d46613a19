import CDNNL

/// The B operand of one attention product for every (batch item, head), reordered once into
/// the blocked layout its primitive asks for. Given plain rows, a bfloat16 product packs B into
/// pairs of rows on every call; each head's K^T or V' is used by every block of its queries (16
/// at 4096 queries), so packing it once instead saves that copy on all the others.
final class BlockedHeadOperands: @unchecked Sendable {
    /// The product, whose B is in its blocked layout (`product.b`).
    let product: MatrixProduct.Prepared
    private let buffer: AlignedBuffer
    private let headBytes: Int

    /// - Parameters:
    ///   - shape: the product of a full block of queries, B given by its plain strides
    ///   - heads: how many (item, head) operands
    ///   - plain: where head `index`'s B starts, laid out as `shape` says
    init(_ shape: MatmulShape, heads: Int, plain: (Int) -> UnsafeRawPointer) {
        var blocked = shape
        blocked.packsB = true
        product = MatrixProduct.prepared(blocked)
        let stored = shape.plainB(shape.precision.dataType)
        headBytes = (product.b.byteCount + 63) / 64 * 64
        buffer = AlignedBuffer(byteCount: heads * headBytes)
        let reorder = Primitive(reorderFrom: stored, to: product.b)
        let (destination, headBytes, layout) = (buffer.pointer, headBytes, product.b)
        parallelFor(heads) { range in
            for index in range {
                reorder.execute([
                    .init(kind: DNNL_ARG_FROM, descriptor: stored, pointer: plain(index)),
                    .init(kind: DNNL_ARG_TO, descriptor: layout, pointer: destination + index * headBytes),
                ])
            }
        }
    }

    /// Head `index`'s B, in the product's layout.
    func operand(_ index: Int) -> UnsafeRawPointer { UnsafeRawPointer(buffer.pointer) + index * headBytes }
}
