import Synchronization

/// Floating-point operations (2 m n k per product, the same per convolution) done by the
/// Engine's products since the last reset: what benchmarks divide by time for GFLOP/s.
public enum OperationCount {
    public static let total = Atomic<Int>(0)

    @inline(__always)
    static func add(_ operations: Int) { total.add(operations, ordering: .relaxed) }
}
