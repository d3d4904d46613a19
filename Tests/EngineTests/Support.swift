@testable import Engine
import Foundation
import Testing

/// Seeded random tensors for kernel tests.
func randomTensor(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -1...1) -> Tensor {
    var generator = SplitMix64(seed: seed)
    return Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &generator) })
}

/// Asserts that two tensors have the same shape and differ by at most `tolerance` anywhere.
func expectClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float,
                 _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.shape == expected.shape, comment, sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    let error = actual.maxAbsDifference(expected)
    #expect(error <= tolerance, "max abs error \(error) > \(tolerance). \(comment?.description ?? "")",
            sourceLocation: sourceLocation)
}

/// A fresh temporary directory, removed by the caller with `cleanUp`.
func temporaryDirectory(_ name: String = #function) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("ptp-tests-\(name.filter(\.isLetter))-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Naive reference implementations, written for clarity, in Double.
enum Naive {
    static func matmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeB: Bool = false) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += Double(a[i * k + p]) * Double(transposeB ? b[j * k + p] : b[p * n + j]) }
                c[i * n + j] = Float(sum)
            }
        }
        return c
    }

    static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D) -> Tensor {
        let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let ho = (h + padding.top + padding.bottom - kh) / stride + 1
        let wo = (w + padding.left + padding.right - kw) / stride + 1
        let xs = x.scalars, ws = weight.scalars, bs = bias?.scalars
        var out = [Float](repeating: 0, count: n * cout * ho * wo)
        for b in 0..<n {
            for co in 0..<cout {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var sum = Double(bs?[co] ?? 0)
                        for ci in 0..<cin {
                            for dy in 0..<kh {
                                for dx in 0..<kw {
                                    let iy = oy * stride + dy - padding.top, ix = ox * stride + dx - padding.left
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    sum += Double(xs[((b * cin + ci) * h + iy) * w + ix]) * Double(ws[((co * cin + ci) * kh + dy) * kw + dx])
                                }
                            }
                        }
                        out[((b * cout + co) * ho + oy) * wo + ox] = Float(sum)
                    }
                }
            }
        }
        return Tensor(shape: [n, cout, ho, wo], values: out)
    }

    static func groupNorm(_ x: Tensor, groups: Int, weight: [Float], bias: [Float], epsilon: Double) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[1])
        let spatial = x.count / (n * c), per = c / groups
        let xs = x.scalars
        var out = [Float](repeating: 0, count: xs.count)
        for b in 0..<n {
            for g in 0..<groups {
                let start = (b * c + g * per) * spatial, size = per * spatial
                let values = xs[start..<(start + size)].map(Double.init)
                let mean = values.reduce(0, +) / Double(size)
                let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(size)
                for i in 0..<size {
                    let channel = g * per + i / spatial
                    out[start + i] = Float((values[i] - mean) / (variance + epsilon).squareRoot() * Double(weight[channel]) + Double(bias[channel]))
                }
            }
        }
        return Tensor(shape: x.shape, values: out)
    }

    static func softmax(_ row: [Float]) -> [Float] {
        let m = row.map(Double.init).max() ?? 0
        let e = row.map { Foundation.exp(Double($0) - m) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    /// Per head: softmax(q k^T / sqrt(d) + mask) v, with an optional edit of the probabilities.
    static func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, mask: Tensor? = nil,
                          edit: ((_ b: Int, _ h: Int, _ row: Int, inout [Float]) -> Void)? = nil) -> Tensor {
        let (batch, nq, width) = (q.shape[0], q.shape[1], q.shape[2])
        let nk = k.shape[1], d = width / heads
        let qs = q.scalars, ks = k.scalars, vs = v.scalars, ms = mask?.scalars
        var out = [Float](repeating: 0, count: batch * nq * width)
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<nq {
                    var scores = [Float](repeating: 0, count: nk)
                    for j in 0..<nk {
                        var dot = 0.0
                        for p in 0..<d { dot += Double(qs[(b * nq + i) * width + h * d + p]) * Double(ks[(b * nk + j) * width + h * d + p]) }
                        scores[j] = Float(dot / Double(d).squareRoot()) + (ms?[i * nk + j] ?? 0)
                    }
                    var probabilities = softmax(scores)
                    edit?(b, h, i, &probabilities)
                    for p in 0..<d {
                        var sum = 0.0
                        for j in 0..<nk { sum += Double(probabilities[j]) * Double(vs[(b * nk + j) * width + h * d + p]) }
                        out[(b * nq + i) * width + h * d + p] = Float(sum)
                    }
                }
            }
        }
        return Tensor(shape: [batch, nq, width], values: out)
    }
}

extension AttentionStore.LayerSums {
    /// The stored sums as the reference keeps them: [prompts, queries, keys], averaged over the
    /// heads and the `steps` they were summed over.
    func averaged(steps: Int) -> Tensor {
        let (prompts, heads, queries, keys) = (self.prompts, site.heads, site.queries, self.keys)
        var average = [Float](repeating: 0, count: prompts * queries * keys)
        for b in 0..<prompts {
            for h in 0..<heads {
                for i in 0..<(queries * keys) {
                    average[b * queries * keys + i] += values[((b * heads + h) * queries) * keys + i] / Float(heads * steps)
                }
            }
        }
        return Tensor(shape: [prompts, queries, keys], values: average)
    }
}
