/// The InstructPix2Pix recipe's CLIP scores of an edit's pair (its metrics/clip_similarity.py),
/// each a cosine similarity of L2-normalised CLIP features: how well each picture matches its
/// prompt, whether the pictures changed the way the prompts did, and how alike they stayed.
public struct PairScores: Sendable, Equatable, Codable {
    /// Source picture against the source prompt.
    public var text0: Double
    /// Edited picture against the edited prompt.
    public var text1: Double
    /// The pictures' change against the prompts' change (feature differences).
    public var direction: Double
    /// Source picture against edited picture.
    public var image: Double

    public init(text0: Double, text1: Double, direction: Double, image: Double) {
        (self.text0, self.text1, self.direction, self.image) = (text0, text1, direction, image)
    }

    /// The names a manifest line gives them.
    public enum CodingKeys: String, CodingKey {
        case text0 = "clip_text_0", text1 = "clip_text_1", direction = "clip_direction", image = "clip_image"
    }
}
