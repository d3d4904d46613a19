import Engine
import Foundation
import Imaging

/// What a camera and a photo library do to a scene, roughly, so that real-image editing is
/// scored on pictures that are not the renderer's exact pixels: drawn at 1.5 times the size,
/// blurred by the lens (a 3 x 3 binomial kernel), shrunk to the model's side (bilinear), sensor
/// noise (Gaussian, 3 levels of 255), then saved as JPEG at quality 75 and read back.
enum PhotographSimulation {
    static let noiseLevels = 3.0
    static let jpegQuality = 75

    static func photograph(of scene: Scene, side: Int, generator: inout SplitMix64) throws -> RGBImage {
        let drawn = SceneRenderer.render(scene, size: side * 3 / 2)
        var picture = resized(blurred(drawn), to: side)
        for index in picture.pixels.indices {
            let value = Double(picture.pixels[index]) + noiseLevels * gaussian(&generator)
            picture.pixels[index] = UInt8(max(0, min(255, value.rounded())))
        }
        return try JPEGCodec.decode(try JPEGCodec.encode(picture, quality: jpegQuality))
    }

    /// A 3 x 3 binomial blur ([1 2 1] / 4 on each axis), edges clamped.
    static func blurred(_ image: RGBImage) -> RGBImage {
        let (w, h) = (image.width, image.height)
        let weights = [1.0, 2.0, 1.0]
        var out = image
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    var sum = 0.0
                    for dy in -1...1 {
                        for dx in -1...1 {
                            let (sx, sy) = (min(max(x + dx, 0), w - 1), min(max(y + dy, 0), h - 1))
                            sum += weights[dx + 1] * weights[dy + 1] * Double(image.pixels[(sy * w + sx) * 3 + c])
                        }
                    }
                    out.pixels[(y * w + x) * 3 + c] = UInt8((sum / 16).rounded())
                }
            }
        }
        return out
    }

    /// Bilinear resize to `side` x `side` (source position (i + 0.5) * in / out - 0.5).
    static func resized(_ image: RGBImage, to side: Int) -> RGBImage {
        let (w, h) = (image.width, image.height)
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        func source(_ i: Int, _ n: Int) -> (Int, Int, Double) {
            let position = max(0, (Double(i) + 0.5) * Double(n) / Double(side) - 0.5)
            let low = min(Int(position), n - 1)
            return (low, min(low + 1, n - 1), position - Double(low))
        }
        for y in 0..<side {
            let (y0, y1, fy) = source(y, h)
            for x in 0..<side {
                let (x0, x1, fx) = source(x, w)
                for c in 0..<3 {
                    func at(_ px: Int, _ py: Int) -> Double { Double(image.pixels[(py * w + px) * 3 + c]) }
                    let top = at(x0, y0) * (1 - fx) + at(x1, y0) * fx
                    let bottom = at(x0, y1) * (1 - fx) + at(x1, y1) * fx
                    pixels[(y * side + x) * 3 + c] = UInt8((top * (1 - fy) + bottom * fy).rounded())
                }
            }
        }
        return RGBImage(width: side, height: side, pixels: pixels)
    }

    /// A standard normal draw (Box-Muller).
    static func gaussian(_ generator: inout SplitMix64) -> Double {
        let u = (Double(generator.next() >> 11) + 0.5) / Double(1 << 53)
        let v = Double(generator.next() >> 11) / Double(1 << 53)
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}
