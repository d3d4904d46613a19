import CDNNL
import EditContract
import Synchronization

/// A layer's weights as loaded: a tensor already in memory, or an entry of a mapped weights
/// file (its name, type and shape checked at load) read and converted to float32 only when a
/// precision first needs it, so a bf16 run never holds a float32 copy of a float16 checkpoint.
struct WeightSource: Sendable {
    let shape: [Int]
    private let read: @Sendable () -> Tensor

    /// Weights already in memory.
    init(_ tensor: Tensor) {
        shape = tensor.shape
        read = { tensor }
    }

    /// The float entry `name` of `file`, which must have `shape`.
    init(file: SafeTensorsFile, name: String, shape: [Int]) throws {
        let entry = try file.floatEntry(name, shape: shape)
        self.shape = shape
        read = { file.floats(of: entry) }
    }

    private init(shape: [Int], read: @escaping @Sendable () -> Tensor) {
        self.shape = shape
        self.read = read
    }

    /// The values as float32 (a view of the mapping for float32 files, else a new copy).
    func tensor() -> Tensor { read() }

    /// Rows `range` of the first dimension (one half of a projection that is two layers in one).
    func rows(_ range: Range<Int>) -> WeightSource {
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) of weights \(shape)")
        let read = self.read
        return WeightSource(shape: [range.count] + shape.dropFirst()) { read().slice(range) }
    }

    /// The values with LoRA updates added, when first read.
    func updated(by deltas: [LoRADelta]) -> WeightSource {
        let read = self.read
        return WeightSource(shape: shape) { deltas.reduce(read()) { $1.applied(to: $0) } }
    }

    /// Weights computed from these when first read, of shape `newShape` (a layer's weights
    /// rearranged into another layer's that computes the same thing).
    func derived(shape newShape: [Int], _ transform: @escaping @Sendable (Tensor) -> Tensor) -> WeightSource {
        let read = self.read
        return WeightSource(shape: newShape) {
            let result = transform(read())
            precondition(result.shape == newShape, "derived weights \(result.shape), expected \(newShape)")
            return result
        }
    }

    /// The same values seen with another shape of equal size (1x1 convolution weights as a matrix).
    func reshaped(_ newShape: [Int]) -> WeightSource {
        precondition(newShape.reduce(1, *) == shape.reduce(1, *), "cannot view weights \(shape) as \(newShape)")
        let read = self.read
        return WeightSource(shape: newShape) { read().reshaped(newShape) }
    }
}

/// One layer's weights in the forms its products run on, each made once, on first use, and
/// kept: the float32 values as stored, or reorders into the blocked layouts oneDNN's products
/// and convolutions ask for (`format_tag_any`), in the precision they multiply in. A worker
/// serving both precisions holds both forms of the layers it has run in both.
final class PackedWeights: Sendable {
    let source: WeightSource

    private struct Forms {
        var float32: Tensor?
        /// Reordered copies, the layouts they are in and the first stored row each starts at
        /// (usually one per precision; one per column slab for products cut by columns).
        var blocked: [(layout: MemoryDescriptor, firstRow: Int, buffer: AlignedBuffer)] = []
    }
    private let forms = Mutex(Forms())

    init(_ source: WeightSource) {
        self.source = source
        PackedWeightGroup.loading?.add(self)
    }

    var shape: [Int] { source.shape }

    /// The float32 values in the stored order ([out, in] for a linear layer): a view of a
    /// float32 file's mapping, or a converted copy in pages of its own.
    var float32: Tensor {
        forms.withLock { forms in
            if let existing = forms.float32 { return existing }
            var values = source.tensor()
            if !values.isBorrowed {
                let pages = AlignedBuffer(byteCount: values.count * MemoryLayout<Float>.stride, mapped: true)
                values.withUnsafeBufferPointer { pages.pointer.copyMemory(from: $0.baseAddress!, byteCount: pages.byteCount) }
                values = Tensor(shape: values.shape, storage: TensorStorage(
                    borrowing: pages.pointer.assumingMemoryBound(to: Float.self), count: values.count, owner: pages))
            }
            forms.float32 = values
            return values
        }
    }

    /// Bytes of the reordered copies made so far.
    var packedBytes: Int { forms.withLock { $0.blocked.reduce(0) { $0 + $1.buffer.byteCount } } }

    /// Drops every form made so far; the next use makes them again from the source.
    func release() { forms.withLock { $0 = Forms() } }

    /// The values reordered into `layout` (which carries the element type), from the stored
    /// float32 values described by `storedLayout`, starting at stored row `firstRow` (a column
    /// slab of a product reads its own rows of W). Made once per distinct layout and row.
    func reordered(into layout: MemoryDescriptor, storedLayout: MemoryDescriptor, firstRow: Int = 0) -> UnsafeRawPointer {
        forms.withLock { forms in
            if let existing = forms.blocked.first(where: { $0.layout == layout && $0.firstRow == firstRow }) {
                return UnsafeRawPointer(existing.buffer.pointer)
            }
            let buffer = AlignedBuffer(byteCount: layout.byteCount, mapped: true)
            let values = forms.float32 ?? source.tensor()
            let rowLength = shape.dropFirst().reduce(1, *)
            values.withUnsafeBufferPointer { stored in
                Primitive(reorderFrom: storedLayout, to: layout).execute([
                    .init(kind: DNNL_ARG_FROM, descriptor: storedLayout, pointer: stored.baseAddress! + firstRow * rowLength),
                    .init(kind: DNNL_ARG_TO, descriptor: layout, pointer: buffer.pointer),
                ])
            }
            forms.blocked.append((layout, firstRow, buffer))
            return UnsafeRawPointer(buffer.pointer)
        }
    }
}
