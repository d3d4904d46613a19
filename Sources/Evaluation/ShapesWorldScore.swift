/// Scores of images against the scenes they should show.
public enum ShapesWorldScore {
    /// Whether the image shows what the caption says: background, pattern, and each named
    /// object's colour and shape. A pair's caption ("a blue triangle and a red circle") states
    /// no positions, so its objects may appear in either order; a single object's stated
    /// position is not scored.
    public static func matches(_ scene: Scene, _ found: Detection) -> Bool {
        guard found.background == scene.background, found.pattern == scene.pattern, found.objects.count == scene.objects.count else { return false }
        var unmatched = found.objects
        for object in scene.objects {
            guard let index = unmatched.firstIndex(where: { $0.colour == object.colour && $0.shape == object.shape }) else { return false }
            unmatched.remove(at: index)
        }
        return true
    }

    /// Stricter than the caption: the objects also in the order the grammar draws them, left to
    /// right as they are named (the training data's convention).
    public static func matchesInDrawingOrder(_ scene: Scene, _ found: Detection) -> Bool {
        guard found.background == scene.background, found.pattern == scene.pattern, found.objects.count == scene.objects.count else { return false }
        let detected = found.objects.sorted { $0.centroid.x < $1.centroid.x }
        let expected = scene.objects.sorted { $0.x < $1.x }
        return zip(detected, expected).allSatisfy { $0.colour == $1.colour && $0.shape == $1.shape }
    }
}
