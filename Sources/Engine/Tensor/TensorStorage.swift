import CHeap
import Foundation

/// The memory behind a tensor: a run of `Float32` that is either owned (allocated and freed
/// here) or borrowed from another owner, such as a memory-mapped weight file, which it keeps
/// alive. Borrowed memory is read-only; writing to a tensor over it copies first.
public final class TensorStorage: @unchecked Sendable {
    /// Byte alignment of owned buffers: one AVX-512 register, one cache line.
    static let alignment = 64

    let base: UnsafeMutablePointer<Float>
    let count: Int
    let isWritable: Bool
    /// Keeps borrowed memory alive (for example a `MemoryMappedFile`); nil when owned.
    private let owner: AnyObject?

    /// glibc returns every block over its mmap threshold (at most 32 MiB) to the kernel when
    /// freed, so each new activation of a large model would fault in and zero fresh pages: a
    /// tenth of a Stable Diffusion step. Keeping freed blocks in the heap for reuse avoids that.
    private static let heapTuning: Void = ptp_keep_freed_memory()

    /// Allocates `count` uninitialised floats.
    init(uninitializedCount count: Int) {
        _ = Self.heapTuning
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: Self.alignment)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        isWritable = true
        owner = nil
    }

    /// Borrows `count` floats at `base`, kept alive by `owner`.
    init(borrowing base: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.base = UnsafeMutablePointer(mutating: base)
        self.count = count
        isWritable = false
        self.owner = owner
    }

    deinit {
        if owner == nil { UnsafeMutableRawPointer(base).deallocate() }
    }

    func copy() -> TensorStorage {
        let result = TensorStorage(uninitializedCount: count)
        result.base.update(from: base, count: count)
        return result
    }
}
