/// Which source token each token of an edited prompt takes its attention from, for
/// Prompt-to-Prompt's refinement (added words): a global alignment of the two token sequences.
struct TokenAlignment: Sendable, Equatable {
    /// For each of the 77 target positions, the source position it maps to, or -1 for a new token.
    let mapping: [Int]
    /// 1 where the target token has a source match, 0 where it is new.
    let weights: [Float]

    /// Needleman-Wunsch on the token ids with BOS and EOS: gap 0, match +1, mismatch -1; on
    /// ties the traceback prefers left (a target token inserted), then up (a source token
    /// dropped), then the diagonal. Positions past the target's tokens map to themselves.
    init(source: [Int], target: [Int], length: Int = 77) {
        let (n, m) = (source.count, target.count)
        // score[i][j]: best alignment of source[..<i] with target[..<j]; gaps cost nothing.
        var score = [[Int]](repeating: [Int](repeating: 0, count: m + 1), count: n + 1)
        enum Move { case left, up, diagonal, start }
        var trace = [[Move]](repeating: [Move](repeating: .diagonal, count: m + 1), count: n + 1)
        for j in 1...max(m, 1) where j <= m { trace[0][j] = .left }
        for i in 1...max(n, 1) where i <= n { trace[i][0] = .up }
        trace[0][0] = .start
        if n > 0 && m > 0 {
            for i in 1...n {
                for j in 1...m {
                    let left = score[i][j - 1], up = score[i - 1][j]
                    let diagonal = score[i - 1][j - 1] + (source[i - 1] == target[j - 1] ? 1 : -1)
                    let best = max(left, up, diagonal)
                    score[i][j] = best
                    trace[i][j] = best == left ? .left : best == up ? .up : .diagonal
                }
            }
        }
        var pairs: [(Int, Int)] = []  // (target index, source index or -1)
        var (i, j) = (n, m)
        walk: while i > 0 || j > 0 {
            switch trace[i][j] {
            case .diagonal:
                i -= 1
                j -= 1
                pairs.append((j, i))
            case .left:
                j -= 1
                pairs.append((j, -1))
            case .up:
                i -= 1
            case .start:
                break walk
            }
        }
        var mapping = Array(0..<length)
        var weights = [Float](repeating: 1, count: length)
        for (targetIndex, sourceIndex) in pairs where targetIndex < length {
            mapping[targetIndex] = sourceIndex
            weights[targetIndex] = sourceIndex >= 0 ? 1 : 0
        }
        self.mapping = mapping
        self.weights = weights
    }
}
