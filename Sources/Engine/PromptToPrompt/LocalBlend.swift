/// Prompt-to-Prompt's local blending: after each step, the edited latents are reset to the
/// source's outside a mask of where the chosen words attend, so only the edited region changes.
struct LocalBlend: Sendable {
    /// Per prompt (source first), the token positions of the blend words.
    let words: [[Int]]
    /// Per prompt, token positions whose region is removed from the mask (the null-text
    /// notebook's `substruct_words`), or nil.
    let subtractWords: [[Int]]?
    /// Thresholds for the (pooled) word mask and the (unpooled) subtraction mask.
    let threshold: Float
    let subtractThreshold: Float
    /// Blending starts after this many steps (int(start_blend * T)).
    let startStep: Int
    /// Grid of the cross-attention layers the masks come from (the latent's / 4).
    let grid: AttentionGrid

    init(words: [[Int]], subtractWords: [[Int]]? = nil, threshold: Float = 0.3, subtractThreshold: Float = 0.3,
         startStep: Int, grid: AttentionGrid) {
        self.words = words
        self.subtractWords = subtractWords
        self.threshold = threshold
        self.subtractThreshold = subtractThreshold
        self.startStep = startStep
        self.grid = grid
    }

    /// The masks [prompt][h * w] (1 = edited region) after step `step`, or nil before blending
    /// starts. The source's mask is OR-ed into every edited prompt's.
    func masks(store: AttentionStore, step: Int, height: Int, width: Int) -> [[Float]]? {
        guard step + 1 > startStep else { return nil }
        let layers = store.crossLayers(on: grid, places: [.down, .up])
        guard !layers.isEmpty else { return nil }
        func mask(_ tokens: [[Int]], pooled: Bool, threshold: Float) -> [[Bool]] {
            let maps = store.tokenMaps(tokens, layers: layers)
            let side = layers[0].site.width, rows = layers[0].site.height
            let each = maps.map { map -> [Bool] in
                let source = pooled ? Self.maxPool3x3(map, height: rows, width: side) : map
                // Nearest resize to the latent size, then divide by the map's maximum.
                var resized = [Float](repeating: 0, count: height * width)
                for y in 0..<height {
                    let sy = min(Int(Float(y) * Float(rows) / Float(height)), rows - 1)
                    for x in 0..<width {
                        let sx = min(Int(Float(x) * Float(side) / Float(width)), side - 1)
                        resized[y * width + x] = source[sy * side + sx]
                    }
                }
                let peak = resized.max() ?? 0
                guard peak > 0 else { return [Bool](repeating: false, count: height * width) }
                return resized.map { $0 / peak > threshold }
            }
            return each.map { own in zip(each[0], own).map { $0 || $1 } }
        }
        var result = mask(words, pooled: true, threshold: threshold)
        if let subtractWords {
            let removed = mask(subtractWords, pooled: false, threshold: subtractThreshold)
            result = zip(result, removed).map { zip($0, $1).map { $0 && !$1 } }
        }
        return result.map { $0.map { $0 ? 1 : 0 } }
    }

    /// x_b = x_0 + mask_b (x_b - x_0) for every edited prompt b.
    func apply(to latents: inout Tensor, store: AttentionStore, step: Int) {
        let (height, width) = (latents.shape[2], latents.shape[3])
        guard let masks = masks(store: store, step: step, height: height, width: width) else { return }
        Self.keepSource(&latents, outside: masks)
    }

    /// latents [prompts, C, h, w]: every edited row b becomes source + masks[b] * (row - source),
    /// masks[b] on the latent grid (masks[0], the source's, is not read).
    static func keepSource(_ latents: inout Tensor, outside masks: [[Float]]) {
        let (prompts, channels, plane) = (latents.shape[0], latents.shape[1], latents.shape[2] * latents.shape[3])
        let item = channels * plane
        latents.withUnsafeMutableBufferPointer { x in
            for b in 1..<prompts {
                for c in 0..<channels {
                    for i in 0..<plane {
                        let source = x[c * plane + i], index = b * item + c * plane + i
                        x[index] = source + masks[b][i] * (x[index] - source)
                    }
                }
            }
        }
    }

    /// 3x3 max pooling, stride 1, padding 1 (padding never wins, as torch pads with -inf).
    static func maxPool3x3(_ map: [Float], height: Int, width: Int) -> [Float] {
        var out = map
        for y in 0..<height {
            for x in 0..<width {
                var best = -Float.infinity
                for dy in -1...1 {
                    for dx in -1...1 {
                        let (yy, xx) = (y + dy, x + dx)
                        if yy >= 0, yy < height, xx >= 0, xx < width { best = max(best, map[yy * width + xx]) }
                    }
                }
                out[y * width + x] = best
            }
        }
        return out
    }
}
