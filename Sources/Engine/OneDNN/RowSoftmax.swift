import CDNNL
import EditContract

/// Softmax along each row of a float32 matrix on oneDNN, written as float32 or bfloat16: its JIT
/// kernels compute exp at the CPU's full vector width (16 lanes with AVX-512, where the Engine's
/// own loops are compiled for 8) and convert to bfloat16 with the CPU's instruction, which is
/// what attention's probabilities spend most of their time on.
enum RowSoftmax {
    /// One matrix shape and output type.
    struct Shape: Hashable, Sendable {
        var rows: Int
        var columns: Int
        /// The probabilities' type: float32, or bfloat16 for bf16 products.
        var output: Precision
    }

    final class Prepared: Sendable {
        let primitive: Primitive
        let source, destination: MemoryDescriptor

        init(_ shape: Shape) {
            let source = MemoryDescriptor(dimensions: [shape.rows, shape.columns], type: dnnl_f32, strides: [shape.columns, 1])
            let destination = MemoryDescriptor(dimensions: [shape.rows, shape.columns], type: shape.output.dataType, strides: [shape.columns, 1])
            (self.source, self.destination) = (source, destination)
            var operation = dnnl_softmax_v2_desc_t()
            withUnsafePointer(to: source.descriptor) { s in
                withUnsafePointer(to: destination.descriptor) { d in
                    OneDNN.check(dnnl_softmax_v2_forward_desc_init(&operation, dnnl_forward_inference, dnnl_softmax_accurate, s, d, 1),
                                 "describing a softmax \(shape)")
                }
            }
            primitive = withUnsafePointer(to: operation) { Primitive(operation: $0, what: "creating a softmax \(shape)") }
        }

        /// Runs on this thread. `destination` may be `source` for float32 output.
        func run(_ pointer: UnsafePointer<Float>, into output: UnsafeMutableRawPointer) {
            primitive.execute([
                .init(kind: DNNL_ARG_SRC, descriptor: source, pointer: UnsafeRawPointer(pointer)),
                .init(kind: DNNL_ARG_DST, descriptor: destination, pointer: UnsafeRawPointer(output)),
            ])
        }
    }

    private static let cache = ShapeCache<Shape, Prepared>()

    /// The prepared softmax for `shape` (made on first use).
    static func prepared(_ shape: Shape) -> Prepared { cache.value(shape) { Prepared(shape) } }
}
