import CDNNL
import EditContract

/// The shape of one oneDNN matrix product C[m, n] = scale * A[m, k] B[k, n] (+ bias[n])
/// (+ C when accumulating), with every operand's strides, so that a head's columns or a slab's
/// rows are read where they lie.
struct MatmulShape: Hashable, Sendable {
    var m: Int, k: Int, n: Int
    /// Strides of A's rows and columns, and of B's rows (k) and columns (n), in elements.
    var aRowStride: Int, aColumnStride: Int = 1
    var bRowStride: Int, bColumnStride: Int
    var cRowStride: Int
    /// The type of A and B; the bias is float32.
    var precision: Precision
    /// C's type: float32, or bfloat16 for attention's probabilities (`.exponential`), which
    /// only ever feed another bfloat16 product.
    var output = Precision.fp32
    var hasBias = false
    var scale: Float = 1
    /// What happens to the product before it is stored.
    var epilogue = MatmulEpilogue.none
    /// B is given in the blocked layout the primitive chose (`weights`), not by its strides.
    var packsB = false

    /// B [k, n] as its strides lay it out, with elements of `type`.
    func plainB(_ type: dnnl_data_type_t) -> MemoryDescriptor {
        MemoryDescriptor(dimensions: [k, n], type: type, strides: [bRowStride, bColumnStride])
    }

    /// A (rows of length k) times the transpose of a row-major [n, k] matrix (torch's linear
    /// weights) into row-major C.
    static func linear(m: Int, k: Int, n: Int, lda: Int, ldw: Int, ldc: Int, precision: Precision, hasBias: Bool,
                       epilogue: MatmulEpilogue = .none, packsB: Bool = false) -> MatmulShape {
        MatmulShape(m: m, k: k, n: n, aRowStride: lda, bRowStride: 1, bColumnStride: ldw, cRowStride: ldc,
                    precision: precision, hasBias: hasBias, epilogue: epilogue, packsB: packsB)
    }
}

/// Work fused into a product's store (oneDNN post-ops), saving a pass over the output.
enum MatmulEpilogue: Hashable, Sendable {
    case none
    /// C += product (oneDNN's sum post-op): a residual connection.
    case accumulate
    /// C = GELU(product) * G for a float32 G laid out as C (GEGLU's gate; the exact, erf GELU).
    case geluTimes
    /// C = exp(product): attention's unnormalised probabilities, each row shifted by a column
    /// of A (`AttentionBlocks.exponentials`), with no softmax pass over the scores.
    case exponential

    /// The run argument that carries G: the second post-op's second source.
    static let gateArgument: Int32 = DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE * 2 | DNNL_ARG_SRC_1
}

/// Matrix products on oneDNN: a primitive per shape, run single-threaded on the calling thread,
/// or cut into slabs by shape (never by thread count) and spread over the Engine's threads.
enum MatrixProduct {
    /// A prepared product: the primitive and its operands' layouts.
    final class Prepared: Sendable {
        let primitive: Primitive
        /// 2 m n k
        let operations: Int
        let a, b, c: MemoryDescriptor
        let bias: MemoryDescriptor?
        /// B as stored (float32, by its strides), which packed weights are reordered from.
        let storedB: MemoryDescriptor

        init(_ shape: MatmulShape) {
            let type = shape.precision.dataType
            operations = 2 * shape.m * shape.n * shape.k
            let a = MemoryDescriptor(dimensions: [shape.m, shape.k], type: type, strides: [shape.aRowStride, shape.aColumnStride])
            let b = shape.packsB ? MemoryDescriptor(dimensions: [shape.k, shape.n], type: type, tag: dnnl_format_tag_any) : shape.plainB(type)
            storedB = shape.plainB(dnnl_f32)
            let c = MemoryDescriptor(dimensions: [shape.m, shape.n], type: shape.output.dataType, strides: [shape.cRowStride, 1])
            let bias = shape.hasBias ? MemoryDescriptor(dimensions: [1, shape.n], type: dnnl_f32, strides: [shape.n, 1]) : nil
            (self.a, self.c, self.bias) = (a, c, bias)
            var operation = dnnl_matmul_desc_t()
            withUnsafePointer(to: a.descriptor) { pa in
                withUnsafePointer(to: b.descriptor) { pb in
                    withUnsafePointer(to: c.descriptor) { pc in
                        if var biasDescriptor = bias?.descriptor {
                            OneDNN.check(dnnl_matmul_desc_init(&operation, pa, pb, &biasDescriptor, pc), "describing a product \(shape)")
                        } else {
                            OneDNN.check(dnnl_matmul_desc_init(&operation, pa, pb, nil, pc), "describing a product \(shape)")
                        }
                    }
                }
            }
            var attributes: dnnl_primitive_attr_t?
            OneDNN.check(dnnl_primitive_attr_create(&attributes), "creating attributes")
            defer { dnnl_primitive_attr_destroy(attributes) }
            if shape.scale != 1 {
                var scale = shape.scale
                OneDNN.check(dnnl_primitive_attr_set_output_scales(attributes, 1, 0, &scale), "setting a product's scale")
            }
            if shape.epilogue != .none {
                var postOps: dnnl_post_ops_t?
                OneDNN.check(dnnl_post_ops_create(&postOps), "creating post-ops")
                defer { dnnl_post_ops_destroy(postOps) }
                switch shape.epilogue {
                case .none:
                    break
                case .accumulate:
                    OneDNN.check(dnnl_post_ops_append_sum(postOps, 1), "adding a sum post-op")
                case .geluTimes:
                    OneDNN.check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_gelu_erf, 0, 0), "adding a GELU post-op")
                    withUnsafePointer(to: c.descriptor) {
                        OneDNN.check(dnnl_post_ops_append_binary(postOps, dnnl_binary_mul, $0), "adding a product post-op")
                    }
                case .exponential:
                    OneDNN.check(dnnl_post_ops_append_eltwise(postOps, 1, dnnl_eltwise_exp, 0, 0), "adding an exp post-op")
                }
                OneDNN.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "setting post-ops")
            }
            primitive = withUnsafePointer(to: operation) { Primitive(operation: $0, attributes: attributes, what: "creating a product \(shape)") }
            self.b = shape.packsB ? primitive.weightsDescriptor : b
        }

        /// Runs the product on this thread (`gate`: G of a `.geluTimes` epilogue, laid out as C).
        func run(a pointerA: UnsafeRawPointer, b pointerB: UnsafeRawPointer, bias pointerBias: UnsafePointer<Float>?,
                 c pointerC: UnsafeMutableRawPointer, gate: UnsafePointer<Float>? = nil) {
            var arguments: [Primitive.Argument] = [
                .init(kind: DNNL_ARG_SRC, descriptor: a, pointer: pointerA),
                .init(kind: DNNL_ARG_WEIGHTS, descriptor: b, pointer: pointerB),
                .init(kind: DNNL_ARG_DST, descriptor: c, pointer: UnsafeRawPointer(pointerC)),
            ]
            if let bias, let pointerBias { arguments.append(.init(kind: DNNL_ARG_BIAS, descriptor: bias, pointer: pointerBias)) }
            if let gate { arguments.append(.init(kind: MatmulEpilogue.gateArgument, descriptor: c, pointer: gate)) }
            primitive.execute(arguments)
            OperationCount.add(operations)
        }
    }

    private static let cache = ShapeCache<MatmulShape, Prepared>()

    /// The prepared product for `shape` (made on first use).
    static func prepared(_ shape: MatmulShape) -> Prepared { cache.value(shape) { Prepared(shape) } }

    /// y[m, n] = epilogue(x[m, k] W[n, k]^T (+ bias)): a linear layer, cut into
    /// slabs of y's rows, or of its columns when it has few rows, by shape alone (as
    /// `BLAS.parallelGEMM`), each slab one single-threaded oneDNN product on an Engine thread.
    /// Row slabs share the whole weight matrix, reordered once into the layout oneDNN asks for;
    /// column slabs each their rows of W, reordered the same way.
    /// `gate` is G of a `.geluTimes` epilogue, [m, n] like y.
    static func linear(input: ProductInput, rows m: Int, inputs k: Int, weights: PackedWeights, outputs n: Int,
                       bias: UnsafePointer<Float>?, into output: UnsafeMutablePointer<Float>, epilogue: MatmulEpilogue = .none,
                       gate: UnsafePointer<Float>? = nil) {
        precondition((epilogue == .geluTimes) == (gate != nil), "a GELU-times product needs its gate, and only it")
        let precision = input.precision
        // Row slabs write whole rows of y, a dense destination (which oneDNN's blocked kernels
        // need; a column slab's rows lie n apart), and share one packing of W: columns only when
        // there are too few rows to share out.
        let byColumns = n > m && m < 2 * BLAS.minimumRows
        let slabs = BLAS.slabCount(m: m, n: n, k: k, byColumns: byColumns)
        let extent = byColumns ? n : m
        let alignment = byColumns ? BLAS.columnAlignment : BLAS.rowAlignment
        let boundaries = (0...slabs).map { BLAS.slabBoundary($0, of: slabs, extent: extent, alignment: alignment) }
        // Each distinct slab size is one primitive (at most two per layer), prepared here so the
        // threads only run them.
        let prepared = (0..<slabs).map { s -> Prepared in
            let count = boundaries[s + 1] - boundaries[s]
            return MatrixProduct.prepared(.linear(m: byColumns ? m : count, k: k, n: byColumns ? count : n, lda: k, ldw: k, ldc: n,
                                                  precision: precision, hasBias: bias != nil, epilogue: epilogue, packsB: true))
        }
        // W in the blocked layout each primitive asks for, so that no run packs it again: row
        // slabs share the whole of W (one layout for every slab size, in practice), column
        // slabs each have their own rows of W.
        let weightValues = (0..<slabs).map { s in
            weights.reordered(into: prepared[s].b, storedLayout: prepared[s].storedB, firstRow: byColumns ? boundaries[s] : 0)
        }
        parallelFor(slabs) { range in
            for s in range {
                let start = boundaries[s]
                guard boundaries[s + 1] > start else { continue }
                if byColumns {
                    prepared[s].run(a: input.pointer, b: weightValues[s], bias: bias.map { $0 + start },
                                    c: output + start, gate: gate.map { $0 + start })
                } else {
                    prepared[s].run(a: input.advanced(by: start * k), b: weightValues[s], bias: bias, c: output + start * n,
                                    gate: gate.map { $0 + start * n })
                }
            }
        }
    }
}
