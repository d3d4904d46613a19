import EditContract
import Engine
import Foundation

/// Throughput of the Engine's kernels on this machine, against the sgemm peak measured in the
/// same run. Produced by `ptp bench kernels` (release builds only give meaningful numbers).
public struct KernelReport: Sendable {
    public struct Row: Sendable {
        public let name: String
        public let seconds: Double
        public let gflops: Double
    }

    /// sgemm GFLOP/s on a large square product: the machine's practical peak.
    public let peakGFLOPS: Double
    public let rows: [Row]

    public var text: String {
        var lines = [String(format: "sgemm peak (2048^3): %.1f GFLOP/s", peakGFLOPS)]
        lines.append("kernel".padding(toLength: 50, withPad: " ", startingAt: 0) + " time (ms)   GFLOP/s   of sgemm peak")
        for row in rows {
            let name = row.name.padding(toLength: 50, withPad: " ", startingAt: 0)
            lines.append(name + String(format: " %9.2f %9.1f %10.0f%%", row.seconds * 1000, row.gflops, 100 * row.gflops / peakGFLOPS))
        }
        if let headline = rows.first(where: { $0.name == Self.headlineCase }) {
            let share = headline.gflops / peakGFLOPS
            lines.append(String(format: "goal: %@ at >= %.0f%% of sgemm: %.0f%%, %@", Self.headlineCase, 100 * Self.goal, 100 * share,
                                share >= Self.goal ? "met" : "not met"))
        }
        #if DEBUG
        lines.append("warning: a debug build; kernel timings mean little (use swift build -c release)")
        #endif
        return lines.joined(separator: "\n")
    }

    /// The Stable Diffusion convolution the engine is judged on, and its goal as a share of sgemm.
    static let headlineCase = "conv 320->320 3x3 64x64 batch 2 fp32"
    static let goal = 0.8

    /// Runs every case `repeats` times after a warm-up and keeps the fastest run: OpenBLAS's
    /// sgemm, then the oneDNN convolutions and products and the fused attention of Stable
    /// Diffusion's shapes in each of `precisions`.
    public static func measure(repeats: Int, precisions: [Precision] = [.fp32]) -> KernelReport {
        let peak = measureGEMM(m: 2048, n: 2048, k: 2048, repeats: repeats)
        var rows: [Row] = []
        let convShaped = measureGEMM(m: 320, n: 4096, k: 2880, repeats: repeats)
        rows.append(Row(name: "sgemm 320x4096x2880 (conv-shaped)",
                        seconds: 2 * 320 * 4096 * 2880 / convShaped / 1e9, gflops: convShaped))
        // (name, [N, H, W, Cin], Cout, kernel, stride)
        let convCases: [(String, [Int], Int, Int, Int)] = [
            ("conv 320->320 3x3 64x64 batch 2", [2, 64, 64, 320], 320, 3, 1),
            ("conv 640->640 3x3 32x32 batch 2", [2, 32, 32, 640], 640, 3, 1),
            ("conv 1280->1280 3x3 16x16 batch 2", [2, 16, 16, 1280], 1280, 3, 1),
            ("conv 1280->1280 3x3 8x8 batch 2", [2, 8, 8, 1280], 1280, 3, 1),
            ("conv 320->320 3x3 stride 2 64x64 batch 2", [2, 64, 64, 320], 320, 3, 2),
            ("conv 640->320 1x1 64x64 batch 2", [2, 64, 64, 640], 320, 1, 1),
            ("conv 4->320 3x3 64x64 batch 2", [2, 64, 64, 4], 320, 3, 1),
            ("conv 128->128 3x3 512x512 batch 1 (VAE)", [1, 512, 512, 128], 128, 3, 1),
        ]
        // (name, rows, inputs, outputs)
        let linearCases: [(String, Int, Int, Int)] = [
            ("linear 8192x320 -> 320 (attention q/k/v/out)", 8192, 320, 320),
            ("linear 8192x320 -> 2560 (GEGLU in)", 8192, 320, 2560),
            ("linear 8192x1280 -> 320 (GEGLU out)", 8192, 1280, 320),
            ("linear 154x768 -> 320 (cross-attention k/v)", 154, 768, 320),
        ]
        // Self-attention of a 64x64 latent: batch 2, 8 heads of 40, 4096 queries and keys.
        let q = randomTensor([2, 4096, 320], seed: 4), k = randomTensor([2, 4096, 320], seed: 5)
        let attentionFlops = 2.0 * 2 * 2 * 4096 * 4096 * 320
        for precision in precisions {
            let suffix = " " + precision.rawValue
            for (name, input, outputs, kernel, stride) in convCases {
                let conv = Conv2dKernel(
                    weight: randomTensor([outputs, input[3], kernel, kernel], seed: 1),
                    bias: randomTensor([outputs], seed: 2), stride: stride, padding: .uniform(kernel / 2))
                let x = randomTensor(input, seed: 3)
                let seconds = bestTime(repeats: repeats) { _ = conv(x, precision: precision) }
                rows.append(Row(name: name + suffix, seconds: seconds, gflops: conv.flops(for: input) / seconds / 1e9))
            }
            for (name, count, inputs, outputs) in linearCases {
                let linear = Linear(weight: randomTensor([outputs, inputs], seed: 1), bias: randomTensor([outputs], seed: 2))
                let x = randomTensor([count, inputs], seed: 3)
                let seconds = bestTime(repeats: repeats) { _ = linear(x, precision: precision) }
                rows.append(Row(name: name + suffix, seconds: seconds, gflops: 2 * Double(count * inputs * outputs) / seconds / 1e9))
            }
            let fused = bestTime(repeats: max(1, repeats / 2)) {
                _ = Attention.scaledDotProduct(query: q, key: k, value: k, heads: 8, precision: precision)
            }
            rows.append(Row(name: "self-attention 4096^2 8x40 batch 2, fused" + suffix, seconds: fused, gflops: attentionFlops / fused / 1e9))
        }
        // The explicit-probability path Prompt-to-Prompt's controllers read (float32 only).
        let explicit = bestTime(repeats: max(1, repeats / 2)) {
            _ = Attention.scaledDotProduct(query: q, key: k, value: k, heads: 8, hook: { _ in })
        }
        rows.append(Row(name: "self-attention 4096^2 8x40 batch 2, hooked fp32", seconds: explicit, gflops: attentionFlops / explicit / 1e9))
        return KernelReport(peakGFLOPS: peak, rows: rows)
    }

    /// GFLOP/s of the best of `repeats` sgemm calls.
    public static func measureGEMM(m: Int, n: Int, k: Int, repeats: Int) -> Double {
        let a = randomTensor([m, k], seed: 7), b = randomTensor([k, n], seed: 8)
        var c = Tensor(uninitializedShape: [m, n])
        let seconds = bestTime(repeats: repeats) {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        BLAS.parallelGEMM(m: m, n: n, k: k, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n,
                                  c: pc.baseAddress!, ldc: n)
                    }
                }
            }
        }
        return 2 * Double(m) * Double(n) * Double(k) / seconds / 1e9
    }

    static func bestTime(repeats: Int, _ body: () -> Void) -> Double {
        body()  // warm-up: page faults, BLAS thread start
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    static func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
        var generator = SplitMix64(seed: seed)
        let count = shape.reduce(1, *)
        return Tensor(shape: shape, values: (0..<count).map { _ in Float.random(in: -1...1, using: &generator) })
    }
}
