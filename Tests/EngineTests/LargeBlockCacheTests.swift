@testable import Engine
import Testing

@Suite("buffers of a VAE decode are reused, whichever side of its scope they are made or freed on", .serialized)
struct LargeBlockCacheTests {
    /// Between the two thresholds: mapped by the cache inside a scope, from the heap outside.
    static let size = 24 << 20

    @Test("within a scope a freed block serves the next buffer of its size")
    func reuseWithinScope() {
        LargeBlockCache.keepingFreedBlocks {
            let first = LargeBlockCache.allocateBuffer(byteCount: Self.size)
            first.storeBytes(of: 7, as: Int.self)
            LargeBlockCache.deallocateBuffer(first, byteCount: Self.size)
            let second = LargeBlockCache.allocateBuffer(byteCount: Self.size - 4096)
            #expect(second == first)
            // The reused block is the same memory, not a fresh zeroed mapping.
            #expect(second.load(as: Int.self) == 7)
            LargeBlockCache.deallocateBuffer(second, byteCount: Self.size - 4096)
        }
    }

    @Test("a buffer made outside a scope and freed inside it, or the reverse, goes back where it came from")
    func crossingScopes() {
        // From the heap (outside), freed inside: the cache must not take it for one of its blocks.
        let heap = LargeBlockCache.allocateBuffer(byteCount: Self.size)
        heap.initializeMemory(as: UInt8.self, repeating: 1, count: Self.size)
        var mapped: UnsafeMutableRawPointer?
        LargeBlockCache.keepingFreedBlocks {
            LargeBlockCache.deallocateBuffer(heap, byteCount: Self.size)
            mapped = LargeBlockCache.allocateBuffer(byteCount: Self.size)
        }
        // Mapped inside, freed after the scope closed: the cache takes it back (a heap free of it would crash).
        guard let mapped else { Issue.record("no buffer"); return }
        mapped.initializeMemory(as: UInt8.self, repeating: 2, count: Self.size)
        LargeBlockCache.deallocateBuffer(mapped, byteCount: Self.size)
        // Outside a scope this size comes from the heap again, and goes back to it.
        let after = LargeBlockCache.allocateBuffer(byteCount: Self.size)
        after.initializeMemory(as: UInt8.self, repeating: 3, count: Self.size)
        #expect(after.load(fromByteOffset: Self.size - 1, as: UInt8.self) == 3)
        LargeBlockCache.deallocateBuffer(after, byteCount: Self.size)
    }
}
