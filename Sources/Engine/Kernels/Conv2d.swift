import CDNNL
import EditContract

/// Zero padding on each side of an image, in pixels.
public struct Padding2D: Sendable, Hashable {
    var top: Int, bottom: Int, left: Int, right: Int

    init(top: Int, bottom: Int, left: Int, right: Int) {
        (self.top, self.bottom, self.left, self.right) = (top, bottom, left, right)
    }

    /// The same padding on every side.
    public static func uniform(_ p: Int) -> Padding2D { Padding2D(top: p, bottom: p, left: p, right: p) }
    public static let zero = Padding2D.uniform(0)
}

/// A 2-D convolution over channels-last images ([N, H, W, C], the layout oneDNN's fastest
/// kernels read) with weights in torch's [Cout, Cin, kH, kW] layout, on oneDNN.
///
/// The work is cut into slabs by shape alone: each image is one slab or several bands of
/// output rows (a band reads its rows of the input in place, plus the rows above and below its
/// kernel reaches, with zero padding only where the image ends). Each slab is one
/// single-threaded oneDNN convolution on an Engine thread; the weights are reordered once per
/// precision into the layout that convolution asks for.
public struct Conv2dKernel: Sendable {
    let inputChannels: Int
    let outputChannels: Int
    let kernelHeight: Int
    let kernelWidth: Int
    let stride: Int
    let padding: Padding2D
    let weights: PackedWeights  // [Cout, Cin, kH, kW]
    let bias: Tensor?

    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Padding2D = .zero) {
        self.init(source: WeightSource(weight), bias: bias, stride: stride, padding: padding)
    }

    init(source: WeightSource, bias: Tensor?, stride: Int, padding: Padding2D) {
        precondition(source.shape.count == 4, "conv weight must be [Cout, Cin, kH, kW], got \(source.shape)")
        precondition(stride >= 1, "stride must be positive")
        outputChannels = source.shape[0]
        inputChannels = source.shape[1]
        kernelHeight = source.shape[2]
        kernelWidth = source.shape[3]
        self.stride = stride
        self.padding = padding
        if let bias { precondition(bias.count == outputChannels, "conv bias of \(bias.count) for \(outputChannels) outputs") }
        self.bias = bias
        weights = PackedWeights(source)
    }

    /// Output height and width for an input of the given size.
    func outputSize(height: Int, width: Int) -> (Int, Int) {
        ((height + padding.top + padding.bottom - kernelHeight) / stride + 1,
         (width + padding.left + padding.right - kernelWidth) / stride + 1)
    }

    /// Multiply-adds x 2 for one call on a [N, H, W, C] input (for benchmarks).
    public func flops(for input: [Int]) -> Double {
        let (ho, wo) = outputSize(height: input[1], width: input[2])
        return 2 * Double(input[0]) * Double(outputChannels) * Double(ho * wo) * Double(inputChannels * kernelHeight * kernelWidth)
    }

    /// A 1x1, stride-1, unpadded convolution as the linear layer over channels it is.
    var asLinear: Linear? {
        guard kernelHeight == 1, kernelWidth == 1, stride == 1, padding == .zero else { return nil }
        return Linear(source: weights.source.reshaped([outputChannels, inputChannels]), bias: bias)
    }

    /// [N, H, W, Cin] -> [N, Ho, Wo, Cout]
    public func callAsFunction(_ input: Tensor, precision: Precision) -> Tensor {
        self(ProductOperand(input), precision: precision)
    }

    /// [N, H, W, Cin] -> [N, Ho, Wo, Cout], from an operand that may already be bfloat16.
    func callAsFunction(_ input: ProductOperand, precision: Precision) -> Tensor {
        let (n, h, w) = checkedInput(input.shape)
        let (ho, wo) = outputSize(height: h, width: w)
        var output = Tensor(uninitializedShape: [n, ho, wo, outputChannels])
        run(input, into: &output, precision: precision, accumulating: false)
        return output
    }

    /// residual + conv(input) in one pass: the convolution accumulates onto a copy of
    /// `residual` ([N, Ho, Wo, Cout]), as a ResNet block's output adds its shortcut.
    func adding(_ input: Tensor, to residual: Tensor, precision: Precision) -> Tensor {
        adding(ProductOperand(input), to: residual, precision: precision)
    }

    /// residual + conv(input), from an operand that may already be bfloat16.
    func adding(_ input: ProductOperand, to residual: Tensor, precision: Precision) -> Tensor {
        let (n, h, w) = checkedInput(input.shape)
        let (ho, wo) = outputSize(height: h, width: w)
        precondition(residual.shape == [n, ho, wo, outputChannels], "residual \(residual.shape) does not match [\(n), \(ho), \(wo), \(outputChannels)]")
        var output = residual
        run(input, into: &output, precision: precision, accumulating: true)
        return output
    }

    private func checkedInput(_ shape: [Int]) -> (Int, Int, Int) {
        precondition(shape.count == 4 && shape[3] == inputChannels,
                     "conv expects [N, H, W, \(inputChannels)], got \(shape)")
        let (n, h, w) = (shape[0], shape[1], shape[2])
        let (ho, wo) = outputSize(height: h, width: w)
        precondition(ho > 0 && wo > 0, "conv input \(shape) is smaller than the kernel")
        return (n, h, w)
    }

    private func run(_ input: ProductOperand, into output: inout Tensor, precision: Precision, accumulating: Bool) {
        let (ho, wo) = outputSize(height: input.shape[1], width: input.shape[2])
        let outputPlane = ho * wo * outputChannels
        output.withUnsafeMutableBufferPointer { destination in
            let out = destination.baseAddress!
            runBands(input, precision: precision, accumulating: accumulating) { item, rows, convolve in
                convolve(out + item * outputPlane + rows.lowerBound * wo * outputChannels)
            }
        }
    }

    /// Runs the convolution band by band, each band into scratch memory of its own, and hands
    /// each finished band (output rows `rows` of image `item`, [rows, Wo, Cout] float32) to
    /// `consume` on the thread that ran it: for outputs rearranged as they are made, which
    /// then never exist whole in the convolution's own layout.
    func forEachBand(_ input: ProductOperand, precision: Precision,
                     _ consume: (_ item: Int, _ rows: Range<Int>, _ values: UnsafePointer<Float>) -> Void) {
        _ = checkedInput(input.shape)
        let (_, wo) = outputSize(height: input.shape[1], width: input.shape[2])
        runBands(input, precision: precision, accumulating: false) { item, rows, convolve in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows.count * wo * outputChannels)
            defer { scratch.deallocate() }
            convolve(scratch)
            consume(item, rows, scratch)
        }
    }

    /// Runs every slab (one band of output rows of one image) on the Engine's threads: `slab`
    /// gets the image, the band's rows and a function that convolves the band into a destination.
    private func runBands(_ input: ProductOperand, precision: Precision, accumulating: Bool,
                          _ slab: (_ item: Int, _ rows: Range<Int>, _ convolve: (UnsafeMutablePointer<Float>) -> Void) -> Void) {
        let (n, h, w) = (input.shape[0], input.shape[1], input.shape[2])
        let (ho, wo) = outputSize(height: h, width: w)
        let flopsPerRow = 2 * Double(outputChannels * wo * inputChannels * kernelHeight * kernelWidth)
        let plan = ConvolutionPlan(items: n, outputHeight: ho, flopsPerRow: flopsPerRow,
                                   bytesPerRow: wo * outputChannels * MemoryLayout<Float>.stride)
        // Every band shape this call needs, prepared (and its weights reordered) before the
        // slabs run, so that the threads only look them up.
        let bands = plan.bands.map { band(rows: $0, inputHeight: h, inputWidth: w, precision: precision, accumulating: accumulating) }
        let prepared = bands.map { ConvolutionPrimitives.prepared($0.shape) }
        let storedLayout = ConvolutionPrimitives.storedWeightsLayout(of: bands[0].shape)
        let weightPointers = prepared.map { weights.reordered(into: $0.weights, storedLayout: storedLayout) }
        let inputPlane = h * w * inputChannels
        let biasValues = bias
        ProductInput.with(input, precision: precision) { source in
            func runSlabs(bias: UnsafePointer<Float>?) {
                parallelFor(n * bands.count) { slabs in
                    for index in slabs {
                        let (item, bandIndex) = (index / bands.count, index % bands.count)
                        let band = bands[bandIndex]
                        slab(item, band.rows) { destination in
                            prepared[bandIndex].run(
                                source: source.advanced(by: item * inputPlane + band.firstInputRow * w * inputChannels),
                                weights: weightPointers[bandIndex], bias: bias, destination: destination)
                        }
                    }
                }
            }
            if let biasValues {
                biasValues.withUnsafeBufferPointer { runSlabs(bias: $0.baseAddress!) }
            } else {
                runSlabs(bias: nil)
            }
        }
    }

    /// The input rows and convolution shape that output rows `rows` need.
    private func band(rows: Range<Int>, inputHeight h: Int, inputWidth w: Int, precision: Precision, accumulating: Bool)
        -> (rows: Range<Int>, firstInputRow: Int, shape: ConvolutionShape)
    {
        // Rows rows.lowerBound * stride - padding.top ... (rows.upperBound - 1) * stride - padding.top + kH - 1 of the
        // padded image; those outside 0..<h are the band's own zero padding.
        let reachFirst = rows.lowerBound * stride - padding.top
        let reachLast = (rows.upperBound - 1) * stride - padding.top + kernelHeight - 1
        let first = max(0, reachFirst), last = min(h - 1, reachLast)
        let shape = ConvolutionShape(
            inputChannels: inputChannels, outputChannels: outputChannels, height: last - first + 1, width: w,
            kernelHeight: kernelHeight, kernelWidth: kernelWidth, stride: stride,
            padding: Padding2D(top: first - reachFirst, bottom: reachLast - last, left: padding.left, right: padding.right),
            precision: precision, hasBias: bias != nil, accumulates: accumulating)
        precondition(shape.outputHeight == rows.count, "band \(rows) of a \(h)-row input maps to \(shape.outputHeight) rows")
        return (rows, first, shape)
    }
}

/// How a convolution's output rows are cut into bands, by shape alone.
struct ConvolutionPlan {
    /// Work below which a slab is not cut further: a oneDNN call costs tens of microseconds to
    /// set up, so a slab should run for about a millisecond.
    static let grain = 64e6
    /// Most slabs for one call (enough to share out over 16 threads), and the fewest rows a band holds.
    static let maximumSlabs = 16, minimumBandRows = 4

    /// The most output a band holds, where its rows allow (`minimumBandRows`): a band of 32
    /// rows of a VAE decoder's 512 px image (512 x 128 float32 each) is 8 MiB, far past a
    /// core's caches, and with bands of at most 2 MiB its 512 px convolutions took a quarter
    /// less time (150-166 GFLOP/s per thread became 214-221 on Zen 4); at most 1 MiB (a core's
    /// L2 there) added 3-10 % on the 256 and 512 px ones in a run beside 2 MiB.
    static let largestBandBytes = 1 << 20

    /// Output rows of each band of one image.
    let bands: [Range<Int>]

    init(items: Int, outputHeight: Int, flopsPerRow: Double, bytesPerRow: Int) {
        let total = Double(items * outputHeight) * flopsPerRow
        var slabs = 1
        while slabs * 2 <= Self.maximumSlabs && Double(slabs * 2) * Self.grain <= total { slabs *= 2 }
        let wanted = max(1, min(slabs / max(items, 1), outputHeight / Self.minimumBandRows))
        let rowsPerBand = max(min((outputHeight + wanted - 1) / wanted, Self.largestBandBytes / max(bytesPerRow, 1)),
                              min(Self.minimumBandRows, outputHeight))
        bands = stride(from: 0, to: outputHeight, by: rowsPerBand).map { $0..<min($0 + rowsPerBand, outputHeight) }
    }
}

/// The shape of one single-threaded oneDNN convolution of one image (or band of one).
struct ConvolutionShape: Hashable, Sendable {
    var inputChannels: Int, outputChannels: Int
    var height: Int, width: Int
    var kernelHeight: Int, kernelWidth: Int
    var stride: Int
    var padding: Padding2D
    var precision: Precision
    var hasBias: Bool
    var accumulates: Bool

    var outputHeight: Int { (height + padding.top + padding.bottom - kernelHeight) / stride + 1 }
    var outputWidth: Int { (width + padding.left + padding.right - kernelWidth) / stride + 1 }
}

/// Convolution primitives by shape.
enum ConvolutionPrimitives {
    final class Prepared: Sendable {
        let primitive: Primitive
        /// 2 x multiply-adds of one run
        let operations: Int
        let source, destination, weights: MemoryDescriptor
        let bias: MemoryDescriptor?

        init(_ shape: ConvolutionShape) {
            let type = shape.precision.dataType
            operations = 2 * shape.outputChannels * shape.outputHeight * shape.outputWidth * shape.inputChannels * shape.kernelHeight * shape.kernelWidth
            let source = MemoryDescriptor(dimensions: [1, shape.inputChannels, shape.height, shape.width], type: type, tag: dnnl_nhwc)
            let destination = MemoryDescriptor(dimensions: [1, shape.outputChannels, shape.outputHeight, shape.outputWidth], type: dnnl_f32, tag: dnnl_nhwc)
            let anyWeights = MemoryDescriptor(dimensions: [shape.outputChannels, shape.inputChannels, shape.kernelHeight, shape.kernelWidth],
                                              type: type, tag: dnnl_format_tag_any)
            let bias = shape.hasBias ? MemoryDescriptor(dimensions: [shape.outputChannels], type: dnnl_f32, tag: dnnl_a) : nil
            (self.source, self.destination, self.bias) = (source, destination, bias)
            var operation = dnnl_convolution_desc_t()
            let strides: [Int64] = [Int64(shape.stride), Int64(shape.stride)]
            let before: [Int64] = [Int64(shape.padding.top), Int64(shape.padding.left)]
            let after: [Int64] = [Int64(shape.padding.bottom), Int64(shape.padding.right)]
            withUnsafePointer(to: source.descriptor) { s in
                withUnsafePointer(to: anyWeights.descriptor) { wt in
                    withUnsafePointer(to: destination.descriptor) { d in
                        if var biasDescriptor = bias?.descriptor {
                            OneDNN.check(dnnl_convolution_forward_desc_init(&operation, dnnl_forward_inference, dnnl_convolution_direct,
                                                                            s, wt, &biasDescriptor, d, strides, before, after), "describing \(shape)")
                        } else {
                            OneDNN.check(dnnl_convolution_forward_desc_init(&operation, dnnl_forward_inference, dnnl_convolution_direct,
                                                                            s, wt, nil, d, strides, before, after), "describing \(shape)")
                        }
                    }
                }
            }
            var attributes: dnnl_primitive_attr_t?
            OneDNN.check(dnnl_primitive_attr_create(&attributes), "creating attributes")
            defer { dnnl_primitive_attr_destroy(attributes) }
            if shape.accumulates {
                var postOps: dnnl_post_ops_t?
                OneDNN.check(dnnl_post_ops_create(&postOps), "creating post-ops")
                defer { dnnl_post_ops_destroy(postOps) }
                OneDNN.check(dnnl_post_ops_append_sum(postOps, 1), "adding a sum post-op")
                OneDNN.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "setting post-ops")
            }
            primitive = withUnsafePointer(to: operation) { Primitive(operation: $0, attributes: attributes, what: "creating \(shape)") }
            weights = primitive.weightsDescriptor
        }

        func run(source pointer: UnsafeRawPointer, weights weightValues: UnsafeRawPointer, bias biasValues: UnsafePointer<Float>?,
                 destination output: UnsafeMutablePointer<Float>) {
            var arguments: [Primitive.Argument] = [
                .init(kind: DNNL_ARG_SRC, descriptor: source, pointer: pointer),
                .init(kind: DNNL_ARG_WEIGHTS, descriptor: weights, pointer: weightValues),
                .init(kind: DNNL_ARG_DST, descriptor: destination, pointer: UnsafeRawPointer(output)),
            ]
            if let bias, let biasValues { arguments.append(.init(kind: DNNL_ARG_BIAS, descriptor: bias, pointer: biasValues)) }
            primitive.execute(arguments)
            OperationCount.add(operations)
        }
    }

    private static let cache = ShapeCache<ConvolutionShape, Prepared>()

    static func prepared(_ shape: ConvolutionShape) -> Prepared { cache.value(shape) { Prepared(shape) } }

    /// torch's weight layout, [Cout, Cin, kH, kW] float32, which packed weights are reordered from.
    static func storedWeightsLayout(of shape: ConvolutionShape) -> MemoryDescriptor {
        MemoryDescriptor(dimensions: [shape.outputChannels, shape.inputChannels, shape.kernelHeight, shape.kernelWidth],
                         type: dnnl_f32, tag: dnnl_oihw)
    }
}
