import CBLAS
import Synchronization

/// Thin, typed access to OpenBLAS's single-precision matrix products.
///
/// OpenBLAS runs single-threaded here: the Engine splits products across its own threads
/// (`parallelGEMM`), which measured faster than OpenBLAS's pool on this kind of machine
/// (185 vs 160 GFLOP/s for 2048^3 on 2 cores) and lets independent small products (attention
/// heads) run side by side without two thread pools competing.
public enum BLAS {
    /// Pins OpenBLAS to one thread, once, before the first product.
    private static let singleThreaded: Void = openblas_set_num_threads(1)

    /// OpenBLAS's build and core description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... Zen MAX_THREADS=64".
    public static var configuration: String {
        guard let config = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: config) + " " + OpenBLASCore.description
    }

    /// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, row-major, with leading
    /// dimensions as stored (so a head's slice of a wider matrix needs no copy).
    @inline(__always)
    static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = singleThreaded
        OperationCount.add(2 * m * n * k)
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha,
            a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension BLAS {
    /// Work below which a product is not split (about a millisecond on one core).
    static let splitGrain = 4_000_000
    /// Most slabs a product is cut into, and the narrowest slab: every slab packs the shared
    /// operand again, so many thin slabs cost more than they balance.
    static let maximumSlabs = 16, minimumColumns = 256, minimumRows = 96
    /// Slab boundaries fall on multiples of these, so that no slab creates an edge the
    /// unsplit product would not have: OpenBLAS kernels block C's columns (its M, row-major)
    /// by up to 64 and C's rows (its N) by 2 to 16, and an edge block may round differently.
    static let columnAlignment = 64, rowAlignment = 48

    /// `gemm` cut into slabs of C's columns when it is wide, else of its rows, run on the
    /// Engine's threads, each with single-threaded OpenBLAS.
    ///
    /// The cut depends on the product's shape only, never on the thread count, so every
    /// result is bit-identical on one thread or many: a cluster worker with `--threads 1`
    /// reproduces `ptp edit` on all cores exactly, whatever OpenBLAS kernel the CPU selects.
    public static func parallelGEMM(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let byColumns = n >= m
        let extent = byColumns ? n : m
        let slabs = slabCount(m: m, n: n, k: k)
        guard slabs > 1 else {
            gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let alignment = byColumns ? columnAlignment : rowAlignment
        parallelFor(slabs) { range in
            for s in range {
                let start = slabBoundary(s, of: slabs, extent: extent, alignment: alignment)
                let size = slabBoundary(s + 1, of: slabs, extent: extent, alignment: alignment) - start
                if byColumns {
                    gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: size, k: k, alpha: alpha, a: a, lda: lda,
                         b: transposeB ? b + start * ldb : b + start, ldb: ldb,
                         beta: beta, c: c + start, ldc: ldc)
                } else {
                    gemm(transposeA: transposeA, transposeB: transposeB, m: size, n: n, k: k, alpha: alpha,
                         a: transposeA ? a + start : a + start * lda, lda: lda,
                         b: b, ldb: ldb, beta: beta, c: c + start * ldc, ldc: ldc)
                }
            }
        }
    }

    /// How many slabs an m x n x k product is cut into: a power of two (so that they share out
    /// evenly over 2, 4, 8 or 16 threads), each at least `splitGrain` operations and
    /// `minimumColumns` or `minimumRows` wide, at most `maximumSlabs`.
    /// `byColumns` cuts C's columns (default: when C is at least as wide as it is tall).
    static func slabCount(m: Int, n: Int, k: Int, byColumns: Bool? = nil) -> Int {
        let (extent, narrowest) = byColumns ?? (n >= m) ? (n, minimumColumns) : (m, minimumRows)
        let limit = min(maximumSlabs, 2 * m * n * k / splitGrain, extent / narrowest)
        var slabs = 1
        while slabs * 2 <= limit { slabs *= 2 }
        return slabs
    }

    /// Where slab `index` of `slabs` starts: an even share of `extent`, rounded to the
    /// alignment (slab sizes differ by at most one alignment unit).
    static func slabBoundary(_ index: Int, of slabs: Int, extent: Int, alignment: Int) -> Int {
        guard index < slabs else { return extent }
        return min(extent, (index * extent / slabs + alignment / 2) / alignment * alignment)
    }
}

extension Tensor {
    /// Matrix product over the last two dimensions, batched over the leading ones:
    /// [..., m, k] x [..., k, n] -> [..., m, n] (or [..., n, k] with `transposeOther`).
    /// `other` may have rank 2, in which case it is shared by every batch item.
    func matmul(_ other: Tensor, transposeOther: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul needs matrices, got \(shape) and \(other.shape)")
        let m = dim(-2), k = dim(-1)
        let otherK = transposeOther ? other.dim(-1) : other.dim(-2)
        let n = transposeOther ? other.dim(-2) : other.dim(-1)
        precondition(k == otherK, "matmul inner dimensions differ: \(shape) x \(other.shape)")
        let batch = count / (m * k)
        let otherBatch = other.count / (k * n)
        precondition(otherBatch == 1 || otherBatch == batch, "matmul batch mismatch: \(shape) x \(other.shape)")
        var result = Tensor(uninitializedShape: Array(shape.dropLast()) + [n])
        withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                result.withUnsafeMutableBufferPointer { c in
                    if otherBatch == 1 {
                        // One product with all batch rows stacked: better for BLAS.
                        BLAS.parallelGEMM(transposeB: transposeOther, m: batch * m, n: n, k: k,
                                  a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: transposeOther ? k : n,
                                  c: c.baseAddress!, ldc: n)
                    } else {
                        for i in 0..<batch {
                            BLAS.parallelGEMM(transposeB: transposeOther, m: m, n: n, k: k,
                                      a: a.baseAddress! + i * m * k, lda: k,
                                      b: b.baseAddress! + i * k * n, ldb: transposeOther ? k : n,
                                      c: c.baseAddress! + i * m * n, ldc: n)
                        }
                    }
                }
            }
        }
        return result
    }
}
