import CBLAS

/// How an edited prompt's cross-attention map is derived from the source prompt's.
indirect enum CrossAttentionEdit: Sendable {
    /// Word swap: mapped[n] = sum_w source[w] M[w][n], one matrix per edited prompt.
    case replace([ReplacementMatrix])
    /// Added words: mapped[n] = source[m(n)] where token n has a source match m(n), else the
    /// edited prompt's own column.
    case refine([TokenAlignment])
    /// Reweighting: (the wrapped edit's mapping, or the source map) times a per-token scale,
    /// one equalizer of 77 values per edited prompt.
    case reweight(equalizers: [[Float]], base: CrossAttentionEdit?)

    /// Writes the mapped map of edited prompt `target` into `mapped` [queries, keys], from the
    /// source's `source` and the prompt's own `own` maps of the same queries.
    func map(target: Int, source: UnsafePointer<Float>, own: UnsafePointer<Float>, into mapped: UnsafeMutablePointer<Float>,
             queries: Int, keys: Int) {
        switch self {
        case .replace(let matrices):
            let matrix = matrices[target]
            precondition(matrix.length == keys, "replacement matrix of \(matrix.length) for \(keys) keys")
            matrix.values.withUnsafeBufferPointer { m in
                BLAS.gemm(m: queries, n: keys, k: keys, a: source, lda: keys, b: m.baseAddress!, ldb: keys, c: mapped, ldc: keys)
            }
        case .refine(let alignments):
            let alignment = alignments[target]
            for q in 0..<queries {
                let s = source + q * keys, o = own + q * keys, out = mapped + q * keys
                for n in 0..<keys {
                    let from = alignment.mapping[n], weight = alignment.weights[n]
                    // A new token (-1) reads the last column, as the reference's index -1 does,
                    // at weight 0.
                    let sourceValue = s[from >= 0 ? from : keys - 1]
                    out[n] = weight * sourceValue + (1 - weight) * o[n]
                }
            }
        case .reweight(let equalizers, let base):
            let equalizer = equalizers[target]
            if let base {
                base.map(target: target, source: source, own: own, into: mapped, queries: queries, keys: keys)
            } else {
                mapped.update(from: source, count: queries * keys)
            }
            for q in 0..<queries {
                let out = mapped + q * keys
                for n in 0..<keys { out[n] *= equalizer[n] }
            }
        }
    }
}
