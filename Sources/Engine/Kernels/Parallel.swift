import Dispatch
import EditContract
import Foundation
import Synchronization

/// How many threads the Engine uses. OpenBLAS itself runs single-threaded; products are split
/// across these threads by the Engine (see `BLAS`).
public enum ComputeThreads {
    private static let configured = Atomic<Int>(0)
    /// The most threads a run may ask for (far beyond any machine's cores, well below what the
    /// system lets a process start).
    static let maximum = 1024

    /// Checks a `--threads` value, saying what is allowed.
    public static func validate(_ threads: Int) throws {
        guard (1...maximum).contains(threads) else {
            throw EditError(field: "threads", problem: "\(threads) is not a usable thread count", fix: "use 1 to \(maximum) (usually the number of cores)")
        }
    }

    /// Threads for Engine loops: the value set by `setThreadCount`, else the processor count.
    public static var count: Int {
        let value = configured.load(ordering: .relaxed)
        return value > 0 ? value : ProcessInfo.processInfo.activeProcessorCount
    }

    /// Sets the thread count (a worker's `--threads`).
    public static func setThreadCount(_ threads: Int) {
        precondition(threads >= 1, "thread count must be at least 1")
        configured.store(threads, ordering: .relaxed)
    }
}

/// Runs `body` over `0..<count` split into contiguous ranges, one per thread, in parallel.
/// Ranges smaller than `minimumChunk` items are not split further (small work stays inline).
@inline(__always)
func parallelFor(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let threads = min(ComputeThreads.count, max(1, count / max(minimumChunk, 1)))
    if threads <= 1 {
        body(0..<count)
        return
    }
    // A few chunks per thread balance uneven rows without much scheduling cost.
    let chunks = min(count, threads * 4)
    // concurrentPerform returns only once every iteration has run, so `body` never outlives
    // this call; callers give each range its own disjoint slice of memory.
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            if start < end { shared.value(start..<end) }
        }
    }
}

/// Carries a value across a concurrency boundary the compiler cannot check, where the caller
/// guarantees the access is safe (see each use).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
