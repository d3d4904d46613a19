/// The query grid of the attention layers at one level of the UNet. Each down-sampling (a
/// stride-2 convolution with padding 1) takes h x w to ceil(h/2) x ceil(w/2), and the up blocks
/// return through the same sizes, so a level's grid follows from the latent's size alone, for
/// any aspect ratio and for sides that are not powers of two.
struct AttentionGrid: Sendable, Hashable, CustomStringConvertible {
    let height: Int
    let width: Int

    init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    /// The grid after `level` down-samplings of a `latentHeight` x `latentWidth` latent.
    init(latentHeight: Int, latentWidth: Int, level: Int) {
        var (h, w) = (latentHeight, latentWidth)
        for _ in 0..<level { (h, w) = ((h + 1) / 2, (w + 1) / 2) }
        self.init(height: h, width: w)
    }

    var queries: Int { height * width }

    /// Whether an attention layer runs on this grid.
    func contains(_ site: AttentionSite) -> Bool { site.height == height && site.width == width }

    var description: String { "\(height)x\(width)" }
}
