import EditContract
@testable import Engine
import Foundation
import Testing

/// The oneDNN-backed layers in both precisions: float32 against naive references at the
/// reference tolerance, bfloat16 within what rounding inputs to 8 significant bits allows.
@Suite("oneDNN layers in fp32 and bf16")
struct OneDNNKernelTests {
    /// bf16 rounds each input to 8 significant bits (relative error 2^-9); a sum of k products
    /// of such values is off by about sqrt(k) 2^-8 of its typical term.
    static let bfloat16Relative: Float = 2e-2

    static var bfloat16: Bool {
        if !Precision.bf16.isSupported { print("skipping the bf16 cases: this CPU has no AVX512-BF16 or AMX") }
        return Precision.bf16.isSupported
    }

    func naiveLinear(_ x: Tensor, _ w: Tensor, _ b: Tensor?) -> Tensor {
        let (rows, k, n) = (x.count / x.dim(-1), x.dim(-1), w.shape[0])
        var values = Naive.matmul(x.scalars, w.scalars, m: rows, n: n, k: k, transposeB: true)
        if let b { for i in values.indices { values[i] += b.scalars[i % n] } }
        return Tensor(shape: Array(x.shape.dropLast()) + [n], values: values)
    }

    @Test("linear layers: plain, onto a residual, and GELU times a gate; row and column slabs")
    func linear() {
        // 300 rows x 40 outputs is cut by rows; 20 rows x 700 outputs by columns.
        for (rows, inputs, outputs) in [(300, 96, 40), (20, 64, 700), (3, 5, 7)] {
            let x = randomTensor([rows, inputs], seed: 1), w = randomTensor([outputs, inputs], seed: 2), b = randomTensor([outputs], seed: 3)
            let residual = randomTensor([rows, outputs], seed: 4), gate = randomTensor([rows, outputs], seed: 5)
            let layer = Linear(weight: w, bias: b)
            let expected = naiveLinear(x, w, b)
            let gelu = expected.scalars.map { Float(0.5 * Double($0) * (1 + erf(Double($0) / 2.0.squareRoot()))) }
            let gated = Tensor(shape: expected.shape, values: zip(gelu, gate.scalars).map { $0 * $1 })
            expectClose(layer(x, precision: .fp32), expected, tolerance: 1e-4)
            expectClose(layer.adding(x, to: residual, precision: .fp32), residual + expected, tolerance: 1e-4)
            expectClose(layer.gelu(x, times: gate, precision: .fp32), gated, tolerance: 1e-4)
            expectClose(Linear(weight: w, bias: nil)(x, precision: .fp32), naiveLinear(x, w, nil), tolerance: 1e-4)
            if Self.bfloat16 {
                let scale = expected.maxAbs
                expectClose(layer(x, precision: .bf16), expected, tolerance: Self.bfloat16Relative * scale)
                expectClose(layer.gelu(x, times: gate, precision: .bf16), gated, tolerance: Self.bfloat16Relative * scale)
                // bf16 is not fp32: the rounding shows.
                #expect(layer(x, precision: .bf16).maxAbsDifference(expected) > 1e-5)
            }
        }
    }

    @Test("convolutions in bf16 and onto a residual, in bands of rows")
    func convolution() {
        let x = randomTensor([2, 3, 40, 37], seed: 10)  // [N, C, H, W]
        let weight = randomTensor([8, 3, 3, 3], seed: 11), bias = randomTensor([8], seed: 12)
        let conv = Conv2dKernel(weight: weight, bias: bias, stride: 1, padding: .uniform(1))
        let expected = Naive.conv2d(x, weight: weight, bias: bias, stride: 1, padding: .uniform(1))
        let residual = randomTensor([2, 40, 37, 8], seed: 13)
        expectClose(conv.adding(x.channelsLast(), to: residual, precision: .fp32), residual + expected.channelsLast(), tolerance: 1e-4)
        if Self.bfloat16 {
            expectClose(conv(x.channelsLast(), precision: .bf16).channelsFirst(), expected, tolerance: Self.bfloat16Relative * expected.maxAbs)
        }
        // A 512x512 image is cut into bands of rows, each with its own padding.
        let large = randomTensor([1, 2, 300, 64], seed: 14)
        let small = Conv2dKernel(weight: randomTensor([4, 2, 3, 3], seed: 15), bias: nil, stride: 2, padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1))
        expectClose(small(large.channelsLast(), precision: .fp32).channelsFirst(),
                    Naive.conv2d(large, weight: randomTensor([4, 2, 3, 3], seed: 15), bias: nil, stride: 2,
                                 padding: Padding2D(top: 0, bottom: 1, left: 0, right: 1)), tolerance: 1e-4)
    }

    @Test("a 3x3 convolution of a nearest 2x upsample, run as four 2x2 phases, equals convolving the upsampled image")
    func nearestUpsampledConvolution() {
        // Odd sides reach every edge case of the phases; 64 channels at 48x45 cut each image into bands.
        for (channels, height, width) in [(5, 7, 9), (64, 48, 45)] {
            let x = randomTensor([2, height, width, channels], seed: 20)
            let conv = Conv2dKernel(weight: randomTensor([channels, channels, 3, 3], seed: 21), bias: randomTensor([channels], seed: 22),
                                    stride: 1, padding: .uniform(1))
            let expected = conv(x.resizedNearest(height: 2 * height, width: 2 * width), precision: .fp32)
            let doubled = NearestUpsampledConvolution(conv)
            expectClose(doubled(x, precision: .fp32), expected, tolerance: 1e-4)
            if Self.bfloat16 {
                expectClose(doubled(x, precision: .bf16), expected, tolerance: Self.bfloat16Relative * expected.maxAbs)
            }
            // The upsampling layer takes this path for twice the size and the plain one otherwise.
            let upsample = Upsample2D(conv: conv)
            expectClose(upsample(x, precision: .fp32), expected, tolerance: 1e-4)
            let odd = upsample(x, size: (2 * height - 1, 2 * width), precision: .fp32)
            expectClose(odd, conv(x.resizedNearest(height: 2 * height - 1, width: 2 * width), precision: .fp32), tolerance: 1e-4)
        }
    }

    @Test("fused attention: one key block and the online softmax over several, against the naive reference")
    func fusedAttention() {
        for (queries, keys, heads, width) in [(37, 29, 3, 24), (300, 2500, 2, 80), (130, 1030, 5, 40)] {
            let q = randomTensor([2, queries, width], seed: 20, range: -3...3), k = randomTensor([2, keys, width], seed: 21, range: -3...3)
            let v = randomTensor([2, keys, width], seed: 22)
            let expected = Naive.attention(q: q, k: k, v: v, heads: heads)
            // Every key in one block, and blocks of 1024 keys through the online softmax.
            for keyBlock in [Attention.fusedKeyBlock, 1024] {
                expectClose(Attention.fused(query: q, key: k, value: v, heads: heads, precision: .fp32, keyBlock: keyBlock), expected, tolerance: 1e-5,
                            "\(queries)x\(keys), blocks of \(keyBlock)")
                if Self.bfloat16 {
                    expectClose(Attention.fused(query: q, key: k, value: v, heads: heads, precision: .bf16, keyBlock: keyBlock), expected,
                                tolerance: Self.bfloat16Relative * expected.maxAbs, "bf16 \(queries)x\(keys), blocks of \(keyBlock)")
                }
            }
            #expect(Attention.scaledDotProduct(query: q, key: k, value: v, heads: heads).scalars
                == Attention.fused(query: q, key: k, value: v, heads: heads, precision: .fp32).scalars)
        }
    }

    @Test("bf16 attention taking exp out of the product is as close to float32 as through the softmax")
    func exponentialsAsCloseAsSoftmax() {
        guard Self.bfloat16 else { return }
        // SD 1.5's heads (d = 40) and a VAE's single wide head (d = 512), with scores of several units.
        for (queries, keys, heads, width, range) in [(512, 1024, 8, 320, Float(3)), (300, 1024, 1, 512, 1.2)] {
            let q = randomTensor([1, queries, width], seed: 50, range: -range...range)
            let k = randomTensor([1, keys, width], seed: 51, range: -range...range)
            let v = randomTensor([1, keys, width], seed: 52)
            let expected = Naive.attention(q: q, k: k, v: v, heads: heads)
            func errors(_ exponentials: Bool) -> (largest: Float, rms: Float) {
                let output = Attention.fused(query: q, key: k, value: v, heads: heads, precision: .bf16, exponentials: exponentials)
                let differences = zip(output.scalars, expected.scalars).map { $0 - $1 }
                return (differences.map(abs).max() ?? 0, (differences.map { $0 * $0 }.reduce(0, +) / Float(differences.count)).squareRoot())
            }
            let (exponentials, softmax) = (errors(true), errors(false))
            print("bf16 attention \(queries)x\(keys), d = \(width / heads): exp out of the product \(exponentials), softmax \(softmax)")
            #expect(exponentials.rms <= 1.1 * softmax.rms && exponentials.largest <= 1.5 * softmax.largest)
        }
    }

    @Test("bf16 attention whose score bound lies far above the scores takes the softmax and stays right")
    func attentionFarBound() {
        guard Self.bfloat16 else { return }
        // Keys alternate between opposite corners of a box ±60 wide, and queries are near (1, ..., 1):
        // every score is within a few units of 0, while the box bounds them by 60 d, so exp(score - bound)
        // underflows for every key and only the softmax can give these probabilities. Every value is
        // exact in bfloat16, so that only the probabilities' and V's rounding remain.
        let (queries, keys, heads, width) = (150, 256, 2, 16)
        let k = Tensor(shape: [2, keys, width], values: (0..<(2 * keys * width)).map { ($0 / width + $0 % width) % 2 == 0 ? 60 : -60 })
        let noise = randomTensor([2, queries, width], seed: 40, range: -4...4)
        let q = Tensor(shape: noise.shape, values: noise.scalars.map { 1 + $0.rounded() / 64 })
        let v = randomTensor([2, keys, width], seed: 41)
        let expected = Naive.attention(q: q, k: k, v: v, heads: heads)
        let fused = Attention.fused(query: q, key: k, value: v, heads: heads, precision: .bf16)
        #expect(fused.scalars.allSatisfy { $0.isFinite })
        expectClose(fused, expected, tolerance: Self.bfloat16Relative * expected.maxAbs)
    }

    @Test("with every key in one block, watched (explicit) and unwatched (fused) attention give the same bits")
    func explicitEqualsFused() {
        let q = randomTensor([2, 300, 64], seed: 30, range: -3...3), k = randomTensor([2, 77, 64], seed: 31, range: -3...3)
        let v = randomTensor([2, 77, 64], seed: 32)
        let fused = Attention.scaledDotProduct(query: q, key: k, value: v, heads: 4)
        let watched = Attention.scaledDotProduct(query: q, key: k, value: v, heads: 4, hook: { _ in })
        #expect(fused.scalars.elementsEqual(watched.scalars, by: { $0.bitPattern == $1.bitPattern }))
    }

    @Test("bf16 is offered exactly when the CPU multiplies bfloat16 natively")
    func precisionSupport() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        guard !flags.isEmpty else { print("skipping: no /proc/cpuinfo flags"); return }
        let native = flags.contains("avx512_bf16") || flags.contains("amx_bf16")
        #expect(Precision.bf16.isSupported == native)
        #expect(Precision.fp32.isSupported)
        if !native { #expect(throws: PrecisionError.self) { try Precision.bf16.checkSupported() } }
    }
}
