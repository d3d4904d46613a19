import Foundation

/// A dense, contiguous, row-major array of `Float32` with a shape.
///
/// `Tensor` is a value type with copy-on-write storage: copies are cheap, and writing through
/// one copy never changes another. Weights loaded from safetensors files borrow the mapped file
/// and are copied only if written to.
public struct Tensor: Sendable {
    /// Extent of each dimension, outermost first.
    public private(set) var shape: [Int]
    var storage: TensorStorage

    /// Number of elements.
    var count: Int { storage.count }
    /// Number of dimensions.
    var rank: Int { shape.count }
    /// Whether the values are borrowed from memory owned elsewhere (a mapped float32 weight
    /// file) rather than copied into this tensor's own buffer.
    var isBorrowed: Bool { !storage.isWritable }

    /// A tensor of the given shape with unspecified contents, to be filled by a kernel.
    public init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
    }

    /// A tensor of the given shape filled with `value`.
    init(shape: [Int], repeating value: Float) {
        self.init(uninitializedShape: shape)
        storage.base.initialize(repeating: value, count: count)
    }

    /// A tensor of zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }

    /// A tensor holding `values` in row-major order.
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// A tensor over existing storage (no copy).
    init(shape: [Int], storage: TensorStorage) {
        precondition(shape.reduce(1, *) == storage.count,
                     "shape \(shape) does not match \(storage.count) stored elements")
        self.shape = shape
        self.storage = storage
    }

    /// The elements in row-major order.
    public var scalars: [Float] {
        withUnsafeBufferPointer { Array($0) }
    }

    /// Size of dimension `axis`; negative axes count from the end.
    func dim(_ axis: Int) -> Int { shape[axis < 0 ? rank + axis : axis] }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
    }

    /// Gives write access, first copying the storage if it is shared or read-only.
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) || !storage.isWritable {
            storage = storage.copy()
        }
        return try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
    }

    /// The same elements viewed with another shape of equal element count (no copy).
    /// One dimension may be -1, inferred from the others.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            resolved[inferred] = count / known
        }
        precondition(resolved.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: resolved, storage: storage)
    }

    /// Element at a multi-dimensional index (slow; for tests and small tables).
    subscript(_ index: Int...) -> Float {
        get { storage.base[flatIndex(index)] }
        set {
            let i = flatIndex(index)
            withUnsafeMutableBufferPointer { $0[i] = newValue }
        }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == rank, "index \(index) has the wrong rank for shape \(shape)")
        var flat = 0
        for (i, extent) in zip(index, shape) {
            precondition(i >= 0 && i < extent, "index \(index) out of bounds for shape \(shape)")
            flat = flat * extent + i
        }
        return flat
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = withUnsafeBufferPointer { Array($0.prefix(6)) }
        return "Tensor(\(shape), [\(head.map { String(format: "%.4g", $0) }.joined(separator: ", "))\(count > 6 ? ", …" : "")])"
    }
}
