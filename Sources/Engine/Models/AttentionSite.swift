/// Where in the UNet an attention layer sits.
enum UNetPlace: String, Sendable, Hashable, CaseIterable {
    case down, mid, up
}

/// One attention layer of one UNet pass, as a controller sees it.
public struct AttentionSite: Sendable, Hashable, CustomStringConvertible {
    /// Position among the pass's attention layers, in the order they run (self and cross
    /// layers both counted: SD 1.x at 64x64 has 32).
    let index: Int
    let place: UNetPlace
    /// Cross-attention to the text (keys are tokens) rather than self-attention.
    let isCross: Bool
    /// The query grid: queries = height * width.
    let height: Int
    let width: Int
    let heads: Int

    var queries: Int { height * width }

    public var description: String {
        "\(place) \(isCross ? "cross" : "self") #\(index) \(height)x\(width)"
    }
}

/// Sees, and may edit in place, the attention probabilities of a UNet pass: what
/// Prompt-to-Prompt is built on. Called synchronously from the UNet's forward pass.
public protocol AttentionController: AnyObject {
    /// Whether this layer's probabilities are wanted (layers nobody watches run faster).
    func observes(_ site: AttentionSite) -> Bool
    /// The post-softmax probabilities of a chunk of queries of an observed layer; changes made
    /// here are what multiplies the values.
    func process(_ probabilities: AttentionProbabilities, at site: AttentionSite)
}

/// Numbers the attention layers of one UNet pass and routes them to the controller.
final class AttentionRouter {
    let controller: AttentionController?
    private(set) var count = 0

    init(_ controller: AttentionController?) { self.controller = controller }

    /// The next site, and the hook to give the attention kernel (nil when not observed).
    func next(place: UNetPlace, isCross: Bool, height: Int, width: Int, heads: Int)
        -> ((AttentionProbabilities) -> Void)?
    {
        let site = AttentionSite(index: count, place: place, isCross: isCross, height: height, width: width, heads: heads)
        count += 1
        guard let controller, controller.observes(site) else { return nil }
        return { controller.process($0, at: site) }
    }
}
