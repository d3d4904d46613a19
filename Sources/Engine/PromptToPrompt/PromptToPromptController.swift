/// Prompt-to-Prompt's attention control for one edit: the source prompt (batch row 0 of the
/// conditional half) is never changed; each edited prompt's cross-attention is mapped from the
/// source's by the edit and blended in by the step's alpha per token; its self-attention is the
/// source's during the self-replace steps, at small resolutions in the conditional half
/// (Prompt-to-Prompt's variant) or in every layer of both halves (the InstructPix2Pix recipe's);
/// the maps are stored after editing; and LocalBlend, when set, resets the latents outside the
/// edited region.
final class PromptToPromptController: SamplingController {
    let prompts: Int
    let edit: CrossAttentionEdit?
    /// [step][edited prompt][token]
    let crossAlpha: [[[Float]]]
    let selfSteps: Range<Int>
    /// Self-attention is injected only in layers with at most this many queries.
    let selfMaximumQueries: Int
    /// Self-attention is injected in guidance's unconditional half too.
    let selfInBothHalves: Bool
    let store: AttentionStore
    let localBlend: LocalBlend?
    /// Spatial replacement: after step s, edited latents become the source's while s + 1 < this.
    let spatialReplaceUntil: Int?
    /// Direct inversion: the source's inversion trajectory (clean first); after step s the source
    /// row is set back to element T - 1 - s.
    var sourceTrajectory: [Tensor]?
    /// A mask on the latent grid [h * w] (1 editable, 0 not): after every step, outside it every
    /// edited row is set back to the source row (after LocalBlend, so the two intersect).
    var regionMask: [Float]?

    private var pass: UNetPass?

    init(prompts: Int, edit: CrossAttentionEdit?, crossAlpha: [[[Float]]], selfSteps: Range<Int>,
         selfMaximumQueries: Int, selfInBothHalves: Bool = false, store: AttentionStore, localBlend: LocalBlend? = nil,
         spatialReplaceUntil: Int? = nil) {
        self.selfInBothHalves = selfInBothHalves
        self.spatialReplaceUntil = spatialReplaceUntil
        self.prompts = prompts
        self.edit = edit
        self.crossAlpha = crossAlpha
        self.selfSteps = selfSteps
        self.selfMaximumQueries = selfMaximumQueries
        self.store = store
        self.localBlend = localBlend
    }

    func beginPass(_ pass: UNetPass) { self.pass = pass }

    func endStep(_ step: Int, latents: inout Tensor) {
        store.endStep()
        if let path = sourceTrajectory {
            let anchor = path[path.count - 2 - step]
            latents.withUnsafeMutableBufferPointer { x in
                anchor.withUnsafeBufferPointer { a in (x.baseAddress!).update(from: a.baseAddress!, count: a.count) }
            }
        }
        localBlend?.apply(to: &latents, store: store, step: step)
        if let spatialReplaceUntil { SpatialReplaceController.replace(&latents, after: step, until: spatialReplaceUntil) }
        if let regionMask { LocalBlend.keepSource(&latents, outside: Array(repeating: regionMask, count: latents.shape[0])) }
    }

    private func injectsSelfAttention(_ site: AttentionSite, step: Int) -> Bool {
        !site.isCross && selfSteps.contains(step) && site.queries <= selfMaximumQueries
    }

    /// The batch rows whose self-attention this pass's injection covers.
    private func injectedRows(_ pass: UNetPass) -> [Range<Int>] {
        [pass.conditionalRows] + (selfInBothHalves ? [pass.unconditionalRows] : [])
    }

    func observes(_ site: AttentionSite) -> Bool {
        guard let pass else { return false }
        if injectsSelfAttention(site, step: pass.step) && injectedRows(pass).contains(where: { !$0.isEmpty }) { return true }
        guard !pass.conditionalRows.isEmpty else { return false }
        return (site.isCross && edit != nil) || store.keeps(site)
    }

    func process(_ p: AttentionProbabilities, at site: AttentionSite) {
        guard let pass else { return }
        let count = p.queries * p.keys
        if injectsSelfAttention(site, step: pass.step) {
            for rows in injectedRows(pass) where !rows.isEmpty {
                precondition(rows.count == prompts && rows.upperBound <= p.batch, "controller built for \(prompts) prompts sees rows \(rows) of \(p.batch)")
                for target in 1..<prompts {
                    for h in 0..<p.heads {
                        p.matrix(batch: rows.lowerBound + target, head: h).update(from: p.matrix(batch: rows.lowerBound, head: h), count: count)
                    }
                }
            }
        }
        let rows = pass.conditionalRows
        guard !rows.isEmpty else { return }
        precondition(rows.count == prompts && rows.upperBound <= p.batch, "controller built for \(prompts) prompts sees rows \(rows) of \(p.batch)")
        let source = rows.lowerBound
        if site.isCross, let edit {
            let alphas = crossAlpha[min(pass.step, crossAlpha.count - 1)]
            let mapped = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { mapped.deallocate() }
            for target in 1..<prompts {
                let alpha = alphas[target - 1]
                for h in 0..<p.heads {
                    let own = p.matrix(batch: source + target, head: h)
                    edit.map(target: target - 1, source: p.matrix(batch: source, head: h), own: own, into: mapped,
                             queries: p.queries, keys: p.keys)
                    for q in 0..<p.queries {
                        let row = own + q * p.keys, new = mapped + q * p.keys
                        for n in 0..<p.keys { row[n] = alpha[n] * new[n] + (1 - alpha[n]) * row[n] }
                    }
                }
            }
        }
        store.accumulate(p, site: site, rows: rows)
    }
}

/// Stores attention maps without changing anything: the no-control baseline that still
/// yields attention pictures.
final class AttentionStoringController: SamplingController {
    let store: AttentionStore
    private var pass: UNetPass?

    init(store: AttentionStore) { self.store = store }

    func beginPass(_ pass: UNetPass) { self.pass = pass }

    func endStep(_ step: Int, latents: inout Tensor) { store.endStep() }
    func observes(_ site: AttentionSite) -> Bool {
        guard let pass, !pass.conditionalRows.isEmpty else { return false }
        return store.keeps(site)
    }
    func process(_ p: AttentionProbabilities, at site: AttentionSite) {
        guard let pass else { return }
        store.accumulate(p, site: site, rows: pass.conditionalRows)
    }
}

/// Replaces every edited latent by the source's for the first (1 - stop) of the steps.
final class SpatialReplaceController: SamplingController {
    /// Latents are replaced after step s while s + 1 < this (int((1 - stop) * T)).
    let replaceUntil: Int

    init(stop: Double, steps: Int) { replaceUntil = Int((1 - stop) * Double(steps)) }

    func beginPass(_ pass: UNetPass) {}
    func observes(_ site: AttentionSite) -> Bool { false }
    func process(_ p: AttentionProbabilities, at site: AttentionSite) {}
    func endStep(_ step: Int, latents: inout Tensor) {
        Self.replace(&latents, after: step, until: replaceUntil)
    }

    /// Every row becomes row 0 after step `step` while step + 1 < `until`.
    static func replace(_ latents: inout Tensor, after step: Int, until: Int) {
        guard step + 1 < until else { return }
        latents = latents.slice(0..<1).repeated(latents.shape[0])
    }
}
