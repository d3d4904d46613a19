import Foundation

/// The memory behind a tensor: a run of `Float32` that is either owned (allocated and freed
/// here) or borrowed from another owner, such as a memory-mapped weight file, which it keeps
/// alive. Borrowed memory is read-only; writing to a tensor over it copies first.
///
/// Owned buffers come from the malloc heap, which the CHeap target tunes when the program
/// loads so that freed activations are reused warm: glibc would otherwise hand every block
/// over 32 MiB back to the kernel and fault in fresh zeroed pages for the next step's. Buffers
/// of 64 MiB and more (16 MiB in a VAE decode) come from `LargeBlockCache`, which keeps them
/// warm in the same way.
final class TensorStorage: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    let count: Int
    let isWritable: Bool
    /// Keeps borrowed memory alive (for example a `MemoryMappedFile`); nil when owned.
    private let owner: AnyObject?

    /// Allocates `count` uninitialised floats.
    init(uninitializedCount count: Int) {
        let raw = LargeBlockCache.allocateBuffer(byteCount: max(count, 1) * MemoryLayout<Float>.stride)
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
        if owner == nil { LargeBlockCache.deallocateBuffer(UnsafeMutableRawPointer(base), byteCount: max(count, 1) * MemoryLayout<Float>.stride) }
    }

    func copy() -> TensorStorage {
        let result = TensorStorage(uninitializedCount: count)
        result.base.update(from: base, count: count)
        return result
    }
}
