import Imaging

/// Draws scenes exactly at any resolution: each pixel is the mean of a 4x4 grid of point
/// samples, rounded to the nearest level, as training/shapes_world/world.py draws them.
public enum SceneRenderer {
    public static func render(_ scene: Scene, size: Int) -> RGBImage {
        let n = size * ShapesVocabulary.supersampling
        let background = ShapesVocabulary.rgb(scene.background) ?? (0, 0, 0)
        let shade = ShapesVocabulary.patternColour(background)
        let colours = scene.objects.map { ShapesVocabulary.rgb($0.colour) ?? (0, 0, 0) }
        let period = ShapesVocabulary.patternPeriod, dot = ShapesVocabulary.dotRadius
        var pixels = [UInt8](repeating: 0, count: size * size * 3)
        let s = ShapesVocabulary.supersampling
        for row in 0..<size {
            for column in 0..<size {
                var sum = (0.0, 0.0, 0.0)
                for sy in 0..<s {
                    let py = (Double(row * s + sy) + 0.5) / Double(n)
                    for sx in 0..<s {
                        let px = (Double(column * s + sx) + 0.5) / Double(n)
                        var colour = background
                        switch scene.pattern {
                        case "striped":
                            if Int((py / (period / 2)).rounded(.down)) % 2 == 1 { colour = shade }
                        case "dotted":
                            let cx = ((px / period).rounded(.down) + 0.5) * period, cy = ((py / period).rounded(.down) + 0.5) * period
                            if (px - cx) * (px - cx) + (py - cy) * (py - cy) <= dot * dot { colour = shade }
                        default:
                            break
                        }
                        for (object, objectColour) in zip(scene.objects, colours) where object.contains(px, py) { colour = objectColour }
                        sum.0 += Double(colour.0)
                        sum.1 += Double(colour.1)
                        sum.2 += Double(colour.2)
                    }
                }
                let count = Double(s * s), i = (row * size + column) * 3
                pixels[i] = UInt8((sum.0 / count).rounded(.toNearestOrEven))
                pixels[i + 1] = UInt8((sum.1 / count).rounded(.toNearestOrEven))
                pixels[i + 2] = UInt8((sum.2 / count).rounded(.toNearestOrEven))
            }
        }
        return RGBImage(width: size, height: size, pixels: pixels)
    }

    /// Area-average downsampling by an integer factor (the low-resolution input of the
    /// super-resolution score).
    public static func downsample(_ image: RGBImage, factor: Int) -> RGBImage {
        let (w, h) = (image.width / factor, image.height / factor)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var sum = 0
                    for dy in 0..<factor {
                        for dx in 0..<factor { sum += Int(image.pixels[((y * factor + dy) * image.width + x * factor + dx) * 3 + c]) }
                    }
                    pixels[(y * w + x) * 3 + c] = UInt8((Double(sum) / Double(factor * factor)).rounded(.toNearestOrEven))
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}
