/// Running sums over steps of the conditional attention maps of every layer with at most
/// `maximumQueries` queries (Prompt-to-Prompt's AttentionStore), after any edit.
/// Cross-attention layers are always kept; self-attention layers only when asked (they are
/// queries x queries and large).
final class AttentionStore {
    /// One layer's sums: [prompts, heads, queries, keys].
    struct LayerSums {
        let site: AttentionSite
        var values: [Float]
        let keys: Int
        let prompts: Int
    }

    let maximumQueries: Int
    let keepsSelfAttention: Bool
    /// Layer sums by site index.
    private(set) var layers: [Int: LayerSums] = [:]
    /// Completed steps (the sums' divisor for averages).
    private(set) var steps = 0

    init(maximumQueries: Int, keepsSelfAttention: Bool = false) {
        self.maximumQueries = maximumQueries
        self.keepsSelfAttention = keepsSelfAttention
    }

    /// Whether `site` is kept.
    func keeps(_ site: AttentionSite) -> Bool {
        site.queries <= maximumQueries && (site.isCross || keepsSelfAttention)
    }

    /// Adds a chunk of probabilities of the conditional rows `rows` (one per prompt).
    func accumulate(_ p: AttentionProbabilities, site: AttentionSite, rows: Range<Int>) {
        guard keeps(site), !rows.isEmpty else { return }
        let prompts = rows.count
        if layers[site.index] == nil {
            layers[site.index] = LayerSums(site: site, values: [Float](repeating: 0, count: prompts * p.heads * p.totalQueries * p.keys),
                                           keys: p.keys, prompts: prompts)
        }
        layers[site.index]!.values.withUnsafeMutableBufferPointer { sums in
            for (prompt, row) in rows.enumerated() {
                for h in 0..<p.heads {
                    let source = p.matrix(batch: row, head: h)
                    let target = sums.baseAddress! + ((prompt * p.heads + h) * p.totalQueries + p.queryRange.lowerBound) * p.keys
                    for i in 0..<(p.queries * p.keys) { target[i] += source[i] }
                }
            }
        }
    }

    func endStep() { steps += 1 }

    /// Cross-attention layers on `grid` in the given places, in UNet order.
    func crossLayers(on grid: AttentionGrid, places: Set<UNetPlace>) -> [LayerSums] {
        layers.values.filter { $0.site.isCross && grid.contains($0.site) && places.contains($0.site.place) }
            .sorted { $0.site.index < $1.site.index }
    }

    /// Per prompt, the maps of `tokens` summed over tokens and averaged over the layers' heads:
    /// [prompt][query], from running sums (scale-free uses such as LocalBlend) or divided by the
    /// steps done (averages, for pictures).
    func tokenMaps(_ tokens: [[Int]], layers selected: [LayerSums], averagedOverSteps: Bool = false) -> [[Float]] {
        guard let first = selected.first else { return [] }
        let queries = first.site.queries
        let prompts = first.prompts
        var maps = [[Float]](repeating: [Float](repeating: 0, count: queries), count: prompts)
        var heads = 0
        for layer in selected {
            heads += layer.site.heads
            for prompt in 0..<prompts {
                for h in 0..<layer.site.heads {
                    let base = (prompt * layer.site.heads + h) * queries * layer.keys
                    for q in 0..<queries {
                        var total: Float = 0
                        for token in tokens[prompt] where token < layer.keys { total += layer.values[base + q * layer.keys + token] }
                        maps[prompt][q] += total
                    }
                }
            }
        }
        let divisor = Float(max(heads, 1)) * (averagedOverSteps ? Float(max(steps, 1)) : 1)
        return maps.map { $0.map { $0 / divisor } }
    }
}
