import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The Engine's buffer memory (`allocateBuffer`): the malloc heap below 64 MiB (16 MiB in a VAE
/// decode or encode); from there up (a VAE's activations and their bfloat16 copies at 512 px
/// and up) blocks mapped from the kernel and, when freed, kept for the next buffer of about
/// the same size instead of unmapped.
///
/// Every fresh mapping is faulted in page by page and zeroed by the kernel as it is first
/// written: at 512 px that was a tenth of a VAE decode's time, spent on layers that free and
/// allocate the same sizes over and over. Within `keepingFreedBlocks` (a VAE decode or encode)
/// a freed block is reused for a request of at most its size and at least 4/5 of it. A request
/// no kept block fits first unmaps every kept block, so keeping never holds memory while the
/// process maps more; at most `keptBytes` stay kept, and no block over `largestKept`.
enum LargeBlockCache {
    /// Buffers from this size up come from here (smaller ones from the malloc heap, which keeps
    /// freed blocks up to 64 MiB warm: a UNet's 16-64 MiB activations gain from that).
    static let threshold = 64 << 20
    /// The threshold within `keepingFreedBlocks`: from 64 MiB down to 16, a bf16 VAE decode at
    /// 512 px took 2-3 % less time and peaked 0.3 GiB lower (the heap no longer kept its freed
    /// 16-64 MiB buffers after the decode).
    static let scopedThreshold = 16 << 20
    /// Most bytes kept for reuse (four of a VAE's 512 px activations).
    static let keptBytes = 512 << 20
    /// Larger blocks are unmapped when freed: at SDXL's 1024 px a VAE's activations are 512 MiB
    /// and more, and keeping one would add that much to the edit's peak.
    static let largestKept = 256 << 20

    /// A mapped block by address (raw pointers are not `Sendable`; the lock's state must be).
    private struct Block: Sendable {
        let address: Int
        let byteCount: Int
        var pointer: UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: address) }
    }
    private struct State {
        /// Freed blocks kept for reuse, oldest first.
        var kept: [Block] = []
        /// The mapped size of each block given out (a reused block may be larger than asked for).
        var given: [Int: Int] = [:]
    }
    private static let state = Mutex(State())
    /// Open `keepingFreedBlocks` scopes: outside them a freed block is unmapped at once (a UNet's
    /// activations at SDXL's 1024 px are this large too, and its steps gain little from reuse).
    private static let scopes = Atomic<Int>(0)

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Memory for a buffer of `byteCount` bytes, 64-byte aligned (one AVX-512 register, one
    /// cache line): a block of this cache from `threshold` (`scopedThreshold` within
    /// `keepingFreedBlocks`) up, else from the malloc heap.
    static func allocateBuffer(byteCount: Int) -> UnsafeMutableRawPointer {
        byteCount >= (scopes.load(ordering: .relaxed) > 0 ? scopedThreshold : threshold) ? allocate(byteCount: byteCount)
            : UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    /// Takes back what `allocateBuffer(byteCount:)` gave for the same `byteCount` (a scope may
    /// have opened or closed since, so a block's origin is looked up, not recomputed).
    static func deallocateBuffer(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        if byteCount >= scopedThreshold, free(pointer) { return }
        pointer.deallocate()
    }

    /// A page-aligned block of at least `byteCount` bytes.
    private static func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        let size = (byteCount + pageSize - 1) / pageSize * pageSize
        let (reused, released) = state.withLock { state -> (Block?, [Block]) in
            let fitting = state.kept.indices.filter { state.kept[$0].byteCount >= size && state.kept[$0].byteCount * 4 <= size * 5 }
            if let best = fitting.min(by: { state.kept[$0].byteCount < state.kept[$1].byteCount }) {
                let block = state.kept.remove(at: best)
                state.given[block.address] = block.byteCount
                return (block, [])
            }
            defer { state.kept.removeAll() }
            return (nil, state.kept)
        }
        if let reused, let pointer = reused.pointer { return pointer }
        unmap(released)
        guard let pages = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), pages != MAP_FAILED else {
            fatalError("out of memory: cannot map \(size) bytes (\(String(cString: strerror(errno))))")
        }
        state.withLock { $0.given[Int(bitPattern: pages)] = size }
        return pages
    }

    /// Takes back a block `allocate(byteCount:)` gave out; false, doing nothing, for memory it did not give.
    private static func free(_ pointer: UnsafeMutableRawPointer) -> Bool {
        let address = Int(bitPattern: pointer)
        let released = state.withLock { state -> [Block]? in
            guard let size = state.given.removeValue(forKey: address) else { return nil }
            guard size <= largestKept, scopes.load(ordering: .relaxed) > 0 else { return [Block(address: address, byteCount: size)] }
            state.kept.append(Block(address: address, byteCount: size))
            var released: [Block] = []
            while state.kept.reduce(0, { $0 + $1.byteCount }) > keptBytes { released.append(state.kept.removeFirst()) }
            return released
        }
        guard let released else { return false }
        unmap(released)
        return true
    }

    /// Runs `body` (a VAE decode) with freed blocks kept for reuse; once the last such scope
    /// ends, every kept block is unmapped, so none stays resident through what follows.
    static func keepingFreedBlocks<T>(_ body: () throws -> T) rethrows -> T {
        scopes.add(1, ordering: .relaxed)
        defer { if scopes.subtract(1, ordering: .relaxed).newValue == 0 { releaseKept() } }
        return try body()
    }

    private static func releaseKept() {
        unmap(state.withLock { state in
            defer { state.kept.removeAll() }
            return state.kept
        })
    }

    private static func unmap(_ blocks: [Block]) {
        for block in blocks { munmap(block.pointer, block.byteCount) }
    }
}
