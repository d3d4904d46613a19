import EditContract
@testable import Engine
import Foundation
import Testing

@Suite("CPU kernels against naive references")
struct KernelTests {
    @Test("matmul, batched and shared, plain and transposed, odd shapes",
          arguments: [(1, 1, 1, 1), (3, 7, 5, 2), (17, 33, 65, 3), (64, 129, 257, 1), (300, 301, 77, 2)])
    func matmul(m: Int, n: Int, k: Int, batch: Int) {
        let a = randomTensor([batch, m, k], seed: 1)
        let b = randomTensor([batch, k, n], seed: 2)
        let bt = randomTensor([n, k], seed: 3)
        let product = a.matmul(b)
        let shared = a.matmul(bt, transposeOther: true)
        let (av, bv, btv) = (a.scalars, b.scalars, bt.scalars)
        var expected: [Float] = [], expectedShared: [Float] = []
        for i in 0..<batch {
            expected += Naive.matmul(Array(av[(i * m * k)..<((i + 1) * m * k)]), Array(bv[(i * k * n)..<((i + 1) * k * n)]), m: m, n: n, k: k)
            expectedShared += Naive.matmul(Array(av[(i * m * k)..<((i + 1) * m * k)]), btv, m: m, n: n, k: k, transposeB: true)
        }
        expectClose(product, Tensor(shape: [batch, m, n], values: expected), tolerance: 1e-4)
        expectClose(shared, Tensor(shape: [batch, m, n], values: expectedShared), tolerance: 1e-4)
    }

    @Test("parallel GEMM splits by rows and by columns into the same result")
    func parallelGEMMSplits() {
        // Wide (column slabs), tall (row slabs) and transposed-B cases, large enough to split.
        for (m, n, k, transposeB) in [(40, 3001, 100, false), (2001, 30, 160, false), (257, 1030, 64, true)] {
            let a = randomTensor([m, k], seed: 4), b = randomTensor(transposeB ? [n, k] : [k, n], seed: 5)
            var c = Tensor(shape: [m, n], repeating: 0.5)
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                BLAS.parallelGEMM(transposeB: transposeB, m: m, n: n, k: k, alpha: 2, a: pa.baseAddress!, lda: k,
                                  b: pb.baseAddress!, ldb: transposeB ? k : n, beta: 1, c: pc.baseAddress!, ldc: n)
            } } }
            let expected = Naive.matmul(a.scalars, b.scalars, m: m, n: n, k: k, transposeB: transposeB).map { 2 * $0 + 0.5 }
            expectClose(c, Tensor(shape: [m, n], values: expected), tolerance: 2e-4, "m \(m) n \(n) k \(k)")
        }
    }

    @Test("products, convolutions, attention and GroupNorm are bit-identical on 1, 2, 3 and 5 threads, in each precision")
    func sameBitsOnAnyThreadCount() {
        // Cluster workers (often --threads 1) must reproduce `ptp edit` on all cores exactly.
        let previous = ComputeThreads.count
        defer { ComputeThreads.setThreadCount(previous) }
        let wide = (randomTensor([320, 288], seed: 6), randomTensor([288, 4100], seed: 7))
        let tall = (randomTensor([2001, 160], seed: 8), randomTensor([30, 160], seed: 9))
        // Large enough to be cut into bands of rows and slabs of products.
        let conv = Conv2dKernel(weight: randomTensor([64, 48, 3, 3], seed: 10), bias: randomTensor([64], seed: 11), stride: 1, padding: .uniform(1))
        let image = randomTensor([2, 61, 67, 48], seed: 12)
        let linear = Linear(weight: randomTensor([300, 160], seed: 13), bias: randomTensor([300], seed: 14))
        let tokens = randomTensor([2, 1500, 160], seed: 15)
        // 1500 keys: in one block, and (with blocks of 512) through the online softmax.
        let (q, k) = (randomTensor([2, 1500, 64], seed: 16, range: -3...3), randomTensor([2, 1500, 64], seed: 17, range: -3...3))
        let v = randomTensor([2, 1500, 64], seed: 18)
        let precisions = Precision.allCases.filter(\.isSupported)
        func outputs(threads: Int) -> [[Float]] {
            ComputeThreads.setThreadCount(threads)
            var results = [wide.0.matmul(wide.1).scalars, tall.0.matmul(tall.1, transposeOther: true).scalars,
                           image.groupNorm(groups: 8, weight: nil, bias: nil, epsilon: 1e-5, activation: .silu).scalars]
            for precision in precisions {
                results += [conv(image, precision: precision).scalars, linear(tokens, precision: precision).scalars,
                            Attention.scaledDotProduct(query: q, key: k, value: v, heads: 2, precision: precision).scalars,
                            Attention.fused(query: q, key: k, value: v, heads: 2, precision: precision, keyBlock: 512).scalars]
            }
            return results
        }
        let single = outputs(threads: 1)
        for threads in [2, 3, 5] {
            let several = outputs(threads: threads)
            for (index, (a, b)) in zip(single, several).enumerated() {
                #expect(a.elementsEqual(b, by: { $0.bitPattern == $1.bitPattern }), "case \(index) differs between 1 and \(threads) threads")
            }
        }
    }

    struct ConvCase: CustomTestStringConvertible, Sendable {
        let batch, inputs, outputs, height, width, kernelH, kernelW, stride: Int
        let padding: Padding2D
        var testDescription: String { "\(batch)x\(inputs)x\(height)x\(width) -> \(outputs), k\(kernelH)x\(kernelW) s\(stride) pad \(padding)" }
    }

    @Test("conv2d: every path, odd sizes, asymmetric padding", arguments: [
        ConvCase(batch: 2, inputs: 5, outputs: 7, height: 9, width: 11, kernelH: 1, kernelW: 1, stride: 1, padding: .zero),
        ConvCase(batch: 3, inputs: 4, outputs: 6, height: 13, width: 7, kernelH: 3, kernelW: 3, stride: 1, padding: .uniform(1)),
        ConvCase(batch: 1, inputs: 3, outputs: 5, height: 8, width: 8, kernelH: 3, kernelW: 3, stride: 1, padding: .zero),
        ConvCase(batch: 2, inputs: 2, outputs: 3, height: 10, width: 9, kernelH: 5, kernelW: 3, stride: 1, padding: Padding2D(top: 2, bottom: 1, left: 0, right: 2)),
        ConvCase(batch: 2, inputs: 6, outputs: 4, height: 11, width: 12, kernelH: 3, kernelW: 3, stride: 2, padding: .uniform(1)),
        ConvCase(batch: 1, inputs: 3, outputs: 8, height: 16, width: 16, kernelH: 3, kernelW: 3, stride: 2, padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1)),
        ConvCase(batch: 2, inputs: 3, outputs: 2, height: 7, width: 10, kernelH: 4, kernelW: 2, stride: 3, padding: .uniform(2)),
        ConvCase(batch: 1, inputs: 2, outputs: 3, height: 5, width: 5, kernelH: 1, kernelW: 1, stride: 2, padding: .uniform(1)),
        ConvCase(batch: 5, inputs: 33, outputs: 17, height: 8, width: 8, kernelH: 3, kernelW: 3, stride: 1, padding: .uniform(1)),
        // Large enough for the single-image path to work in bands of rows.
        ConvCase(batch: 1, inputs: 8, outputs: 8, height: 1100, width: 1030, kernelH: 3, kernelW: 3, stride: 1, padding: .uniform(1)),
    ])
    func conv2d(_ c: ConvCase) {
        let x = randomTensor([c.batch, c.inputs, c.height, c.width], seed: 10)
        let weight = randomTensor([c.outputs, c.inputs, c.kernelH, c.kernelW], seed: 11)
        let bias = randomTensor([c.outputs], seed: 12)
        let conv = Conv2dKernel(weight: weight, bias: bias, stride: c.stride, padding: c.padding)
        // The kernel reads and writes channels-last images.
        expectClose(conv(x.channelsLast(), precision: .fp32).channelsFirst(),
                    Naive.conv2d(x, weight: weight, bias: bias, stride: c.stride, padding: c.padding), tolerance: 1e-4)
        let noBias = Conv2dKernel(weight: weight, bias: nil, stride: c.stride, padding: c.padding)
        expectClose(noBias(x.channelsLast(), precision: .fp32).channelsFirst(),
                    Naive.conv2d(x, weight: weight, bias: nil, stride: c.stride, padding: c.padding), tolerance: 1e-4)
    }

    @Test("GroupNorm over channels-last positions, with affine and fused SiLU; odd group sizes, more than one run of positions")
    func groupNorm() {
        for (shape, groups) in [([2, 6, 5, 7], 3), ([1, 32, 4, 4], 32), ([3, 12, 9, 1], 4), ([2, 8, 33], 2), ([2, 20, 11, 13], 5)] {
            // An offset mean makes a one-pass variance visibly wrong.
            let x = randomTensor(shape, seed: 20, range: 99...101)
            let gamma = randomTensor([shape[1]], seed: 21), beta = randomTensor([shape[1]], seed: 22)
            // [N, C, ...] as the naive reference takes it, [N, ..., C] as the kernel does.
            let (n, c) = (shape[0], shape[1])
            func last(_ t: Tensor) -> Tensor { t.reshaped([n, c, t.count / (n * c)]).transposedLastTwo() }
            func first(_ t: Tensor) -> Tensor { t.transposedLastTwo().reshaped(shape) }
            let expected = Naive.groupNorm(x, groups: groups, weight: gamma.scalars, bias: beta.scalars, epsilon: 1e-5)
            expectClose(first(last(x).groupNorm(groups: groups, weight: gamma, bias: beta, epsilon: 1e-5)), expected, tolerance: 1e-4)
            let fused = first(last(x).groupNorm(groups: groups, weight: gamma, bias: beta, epsilon: 1e-5, activation: .silu))
            expectClose(fused, Tensor(shape: shape, values: expected.scalars.map { Float(Double($0) / (1 + Foundation.exp(-Double($0)))) }), tolerance: 1e-4)
            // Without the affine parameters.
            let plain = Naive.groupNorm(x, groups: groups, weight: [Float](repeating: 1, count: shape[1]), bias: [Float](repeating: 0, count: shape[1]), epsilon: 1e-5)
            expectClose(first(last(x).groupNorm(groups: groups, weight: nil, bias: nil, epsilon: 1e-5)), plain, tolerance: 1e-4)
        }
    }

    @Test("LayerNorm over the last dimension")
    func layerNorm() {
        let x = randomTensor([3, 5, 77], seed: 30, range: -3...5)
        let gamma = randomTensor([77], seed: 31), beta = randomTensor([77], seed: 32)
        let xs = x.scalars
        var expected = [Float]()
        for row in 0..<15 {
            let values = xs[(row * 77)..<((row + 1) * 77)].map(Double.init)
            let mean = values.reduce(0, +) / 77
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 77
            expected += values.enumerated().map { Float(($0.element - mean) / (variance + 1e-5).squareRoot() * Double(gamma.scalars[$0.offset]) + Double(beta.scalars[$0.offset])) }
        }
        expectClose(x.layerNorm(weight: gamma, bias: beta, epsilon: 1e-5), Tensor(shape: x.shape, values: expected), tolerance: 1e-4)
    }

    @Test("SiLU, exact GELU and quick GELU over a wide range")
    func activations() {
        let x = randomTensor([4099], seed: 40, range: -12...12)
        let xs = x.scalars.map(Double.init)
        expectClose(x.silu(), Tensor(shape: x.shape, values: xs.map { Float($0 / (1 + Foundation.exp(-$0))) }), tolerance: 2e-6)
        expectClose(x.gelu(), Tensor(shape: x.shape, values: xs.map { Float(0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot()))) }), tolerance: 2e-6)
        expectClose(x.quickGELU(), Tensor(shape: x.shape, values: xs.map { Float($0 / (1 + Foundation.exp(-1.702 * $0))) }), tolerance: 2e-6)
        // Extremes stay finite and exact in the limit.
        let extremes = Tensor(shape: [4], values: [-200, -90, 90, 200])
        #expect(extremes.silu().scalars.allSatisfy { $0.isFinite })
        #expect(extremes.gelu().scalars == [-0, -0, 90, 200])
    }

    @Test("softmax: stable for large values, odd widths, masked rows")
    func softmax() {
        for width in [1, 15, 16, 17, 77, 1000] {
            let x = randomTensor([3, width], seed: 50, range: -30...30) + 1000  // overflows a naive exp
            let expected = (0..<3).flatMap { Naive.softmax(Array(x.scalars[($0 * width)..<(($0 + 1) * width)])) }
            expectClose(x.softmax(), Tensor(shape: x.shape, values: expected), tolerance: 1e-6, "width \(width)")
        }
        let masked = Tensor(shape: [1, 4], values: [0, -.infinity, 1, -.infinity]).softmax().scalars
        #expect(abs(masked[0] - 0.26894142) < 1e-6 && masked[1] == 0 && masked[3] == 0)
    }

    @Test("attention: heads read in place, chunked, masked, and a hook that edits")
    func attention() {
        let q = randomTensor([2, 37, 24], seed: 60, range: -2...2)
        let k = randomTensor([2, 29, 24], seed: 61, range: -2...2)
        let v = randomTensor([2, 29, 24], seed: 62)
        let expected = Naive.attention(q: q, k: k, v: v, heads: 3)
        expectClose(Attention.scaledDotProduct(query: q, key: k, value: v, heads: 3), expected, tolerance: 1e-5)
        // A budget of two query rows forces many chunks through the hook path.
        var seenQueries = Set<Int>()
        let chunked = Attention.scaledDotProduct(query: q, key: k, value: v, heads: 3, scoreBudget: 2 * 2 * 3 * 29 * 4) { p in
            for query in p.queryRange { seenQueries.insert(query) }
            #expect(p.queries <= 2 && p.batch == 2 && p.heads == 3 && p.keys == 29 && p.totalQueries == 37)
        }
        expectClose(chunked, expected, tolerance: 1e-5)
        #expect(seenQueries == Set(0..<37))

        // The hook's edits reach the output: batch item 1 takes item 0's probabilities, and key 3
        // is scaled by 2 (unnormalised, as Prompt-to-Prompt's reweighting does).
        let edited = Attention.scaledDotProduct(query: q, key: k, value: v, heads: 3, scoreBudget: 3 * 2 * 3 * 29 * 4) { p in
            for h in 0..<p.heads {
                let source = p.matrix(batch: 0, head: h), target = p.matrix(batch: 1, head: h)
                target.update(from: source, count: p.queries * p.keys)
                for row in 0..<p.queries { target[row * p.keys + 3] *= 2 }
            }
        }
        var sourceRows: [Int: [Float]] = [:]
        let expectedEdit = Naive.attention(q: q, k: k, v: v, heads: 3) { b, h, row, probabilities in
            if b == 0 { sourceRows[h * 1000 + row] = probabilities } else {
                probabilities = sourceRows[h * 1000 + row]!
                probabilities[3] *= 2
            }
        }
        expectClose(edited, expectedEdit, tolerance: 1e-5)

        // A causal mask as the text encoder uses.
        let causal = Tensor(shape: [37, 37], values: (0..<(37 * 37)).map { ($0 % 37) > ($0 / 37) ? -Float.infinity : 0 })
        let qq = randomTensor([1, 37, 24], seed: 63)
        expectClose(Attention.scaledDotProduct(query: qq, key: qq, value: qq, heads: 2, mask: causal),
                    Naive.attention(q: qq, k: qq, v: qq, heads: 2, mask: causal), tolerance: 1e-5)
    }

    @Test("nearest upsampling, nearest and bilinear resizing against naive loops, odd sizes")
    func resampling() {
        let x = randomTensor([2, 3, 5, 7], seed: 74)
        let (h, w) = (5, 7)
        func naive(_ height: Int, _ width: Int, _ value: (Int, Int, Int) -> Double) -> Tensor {
            var out: [Float] = []
            for plane in 0..<6 { for y in 0..<height { for x in 0..<width { out.append(Float(value(plane, y, x))) } } }
            return Tensor(shape: [2, 3, height, width], values: out)
        }
        let xs = x.scalars
        func at(_ plane: Int, _ y: Int, _ x: Int) -> Double { Double(xs[(plane * h + y) * w + x]) }
        for factor in [2, 3] {
            let expected = naive(h * factor, w * factor) { at($0, $1 / factor, $2 / factor) }
            #expect(x.channelsLast().upsampledNearest(factor: factor).channelsFirst().scalars == expected.scalars, "factor \(factor)")
        }
        // torch's nearest: floor(i * in / out); bilinear with align_corners=False.
        for (height, width) in [(11, 4), (10, 14), (3, 3), (17, 9)] {
            let nearest = naive(height, width) { at($0, min($1 * h / height, h - 1), min($2 * w / width, w - 1)) }
            #expect(x.channelsLast().resizedNearest(height: height, width: width).channelsFirst().scalars == nearest.scalars,
                    "nearest \(height)x\(width)")
            func source(_ i: Int, _ size: Int, _ input: Int) -> (Int, Int, Double) {
                let coordinate = max((Double(i) + 0.5) * Double(input) / Double(size) - 0.5, 0)
                let low = min(Int(coordinate), input - 1)
                return (low, min(low + 1, input - 1), coordinate - Double(low))
            }
            let bilinear = naive(height, width) { plane, y, xx in
                let (t, b, fy) = source(y, height, h), (l, r, fx) = source(xx, width, w)
                let top = at(plane, t, l) * (1 - fx) + at(plane, t, r) * fx
                let bottom = at(plane, b, l) * (1 - fx) + at(plane, b, r) * fx
                return top * (1 - fy) + bottom * fy
            }
            expectClose(x.resizedBilinear(height: height, width: width), bilinear, tolerance: 1e-6, "bilinear \(height)x\(width)")
        }
    }

    @Test("attention without a hook: score matrices larger than the block budget run in query chunks")
    func attentionLargeScores() {
        // 1100 queries x 1000 keys x 4 bytes is over the 4 MiB block budget: several chunks.
        let q = randomTensor([1, 1100, 16], seed: 64, range: -2...2)
        let k = randomTensor([1, 1000, 16], seed: 65, range: -2...2)
        let v = randomTensor([1, 1000, 16], seed: 66)
        expectClose(Attention.scaledDotProduct(query: q, key: k, value: v, heads: 2), Naive.attention(q: q, k: k, v: v, heads: 2), tolerance: 1e-5)
    }

    @Test("nearest upsampling, concatenation, slicing, transposition, repetition")
    func layout() {
        let x = randomTensor([2, 3, 4, 5], seed: 70)
        let up = x.upsampledNearest()  // as [N, H, W, C]
        #expect(up.shape == [2, 6, 8, 5])
        for (b, i, j, c) in [(0, 0, 0, 0), (1, 5, 7, 4), (1, 1, 3, 4), (0, 2, 5, 2)] {
            #expect(up[b, i, j, c] == x[b, i / 2, j / 2, c])
        }
        #expect(x.channelsLast().channelsFirst().scalars == x.scalars && x.channelsLast()[1, 2, 3, 0] == x[1, 0, 2, 3])
        let y = randomTensor([2, 1, 4, 5], seed: 71)
        let joined = Tensor.concatenate([x, y], axis: 1)
        #expect(joined.shape == [2, 4, 4, 5] && joined[1, 3, 2, 1] == y[1, 0, 2, 1] && joined[1, 2, 2, 1] == x[1, 2, 2, 1])
        #expect(joined.slice(3..<4, axis: 1).scalars == y.scalars)
        #expect(joined.slice(0..<3, axis: 1).scalars == x.scalars)
        let parts = joined.chunked(2, axis: 3 - 3)
        #expect(parts[1].scalars == joined.slice(1..<2).scalars)
        let m = randomTensor([3, 35, 33], seed: 72)
        let t = m.transposedLastTwo()
        #expect(t.shape == [3, 33, 35] && t[2, 32, 34] == m[2, 34, 32] && t[1, 5, 7] == m[1, 7, 5])
        let r = randomTensor([2, 3], seed: 73)
        #expect(r.repeated(2).scalars == r.scalars + r.scalars)
        #expect(r.repeated(2, interleaved: true)[1, 2] == r[0, 2])
    }

    @Test("tensors are values: writing to a copy or to mapped weights never changes the original")
    func copyOnWrite() {
        let a = Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        var b = a
        b[0, 0] = 9
        #expect(a[0, 0] == 1 && b[0, 0] == 9)
        let reshaped = a.reshaped([4, -1])
        #expect(reshaped.shape == [4, 1] && reshaped.scalars == a.scalars)
    }
}

@Suite("OpenBLAS kernel choice")
struct OpenBLASCoreTests {
    static let emeraldRapids = "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16\n"

    @Test("a fallback core is replaced by the best set the CPU runs; a known core is kept")
    func choice() {
        let avx512 = OpenBLASCore.cpuFlags(cpuinfo: "processor\t: 0\n" + Self.emeraldRapids)
        #expect(avx512.contains("avx512bw") && avx512.contains("fma"))
        #expect(OpenBLASCore.better(than: "Prescott", flags: avx512) == "SkylakeX")
        #expect(OpenBLASCore.better(than: "Sandybridge", flags: ["avx", "avx2", "fma"]) == "Haswell")
        #expect(OpenBLASCore.better(than: "Haswell", flags: avx512) == nil)
        #expect(OpenBLASCore.better(than: "Zen", flags: avx512) == nil)
        #expect(OpenBLASCore.better(than: "Prescott", flags: ["sse3", "avx"]) == nil)
        #expect(OpenBLASCore.cpuFlags(cpuinfo: "no flags here") == [])
        #expect(!OpenBLASCore.current.isEmpty)
    }
}
