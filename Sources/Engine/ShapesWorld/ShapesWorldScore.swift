/// Scores of images against the scenes they should show.
public enum ShapesWorldScore {
    /// Background, pattern, and every object's colour and shape (objects matched left to right).
    public static func matches(_ scene: Scene, _ found: Detection) -> Bool {
        guard found.background == scene.background, found.pattern == scene.pattern, found.objects.count == scene.objects.count else { return false }
        let detected = found.objects.sorted { $0.centroid.x < $1.centroid.x }
        let expected = scene.objects.sorted { $0.x < $1.x }
        return zip(detected, expected).allSatisfy { $0.colour == $1.colour && $0.shape == $1.shape }
    }
}
