import Foundation
import Imaging

/// What the detector found in an image of the shapes world.
public struct Detection: Sendable {
    public struct Object: Sendable {
        public let colour: String
        public let shape: String
        /// Fraction of the image.
        public let area: Double
        /// Centre of mass, in units of the image side.
        public let centroid: (x: Double, y: Double)
        /// How much of its bounding box the object fills (circle ~0.785, square ~1, triangle ~0.5).
        public let fill: Double
        /// The object's pixels.
        public let mask: [Bool]
    }
    public let background: String
    public let pattern: String?
    /// Largest first.
    public let objects: [Object]
    /// Pixels not of the background's colour or its pattern shade.
    public let objectMask: [Bool]
    public let width: Int
    public let height: Int
}

extension Detection: CustomStringConvertible {
    /// "white striped: yellow circle (fill 0.77), ...": what was found, for failure listings.
    public var description: String {
        let found = objects.map { "\($0.colour) \($0.shape) (fill \(String(format: "%.2f", $0.fill)))" }
        return background + (pattern.map { " " + $0 } ?? "") + ": " + found.joined(separator: ", ")
    }
}

/// The exact detectors of the shapes world (the same as training/shapes_world/detect.py):
/// every pixel is classified to the nearest palette colour or pattern shade; the background is
/// the most common colour on the border; objects are the 4-connected regions of other colours;
/// an object's colour is its most common colour, and its shape follows from how much of its
/// bounding box it fills, measured with per-pixel coverage so anti-aliased edges count by how
/// much they are covered.
public enum SceneDetector {
    static let minimumObjectFraction = 0.012
    /// The palette colours then their pattern shades: class k < 8 is colour k, 8 + k its shade.
    static let reference: [(Double, Double, Double)] = {
        let base = ShapesVocabulary.palette.map(\.rgb)
        return (base + base.map(ShapesVocabulary.patternColour)).map { (Double($0.0), Double($0.1), Double($0.2)) }
    }()

    public static func detect(_ image: RGBImage, maximumObjects: Int = 2) -> Detection {
        let (w, h) = (image.width, image.height)
        let colourCount = ShapesVocabulary.palette.count
        var classes = [Int](repeating: 0, count: w * h)
        for i in 0..<(w * h) {
            let (r, g, b) = (Double(image.pixels[i * 3]), Double(image.pixels[i * 3 + 1]), Double(image.pixels[i * 3 + 2]))
            var best = 0, bestDistance = Double.infinity
            for (k, c) in reference.enumerated() {
                let d = (r - c.0) * (r - c.0) + (g - c.1) * (g - c.1) + (b - c.2) * (b - c.2)
                if d < bestDistance { (best, bestDistance) = (k, d) }
            }
            classes[i] = best
        }
        let base = classes.map { $0 % colourCount }
        var border = [Int](repeating: 0, count: colourCount)
        for x in 0..<w { border[base[x]] += 1; border[base[(h - 1) * w + x]] += 1 }
        for y in 0..<h { border[base[y * w]] += 1; border[base[y * w + w - 1]] += 1 }
        let backgroundIndex = border.indices.max { border[$0] < border[$1] || (border[$0] == border[$1] && $0 > $1) } ?? 0
        let isBackground = base.map { $0 == backgroundIndex }
        let objectMask = isBackground.map { !$0 }
        let backgroundRGB = reference[backgroundIndex]

        var objects: [Detection.Object] = []
        for component in components(objectMask, width: w, height: h).prefix(maximumObjects) {
            let count = component.filter { $0 }.count
            let area = Double(count) / Double(w * h)
            if area < minimumObjectFraction { break }
            var votes = [Int](repeating: 0, count: colourCount)
            var sumX = 0.0, sumY = 0.0
            for i in 0..<(w * h) where component[i] {
                votes[base[i]] += 1
                sumX += Double(i % w)
                sumY += Double(i / w)
            }
            let colourIndex = votes.indices.max { votes[$0] < votes[$1] || (votes[$0] == votes[$1] && $0 > $1) } ?? 0
            let fill = softFill(image, component: component, background: backgroundRGB, colour: reference[colourIndex])
            objects.append(Detection.Object(
                colour: ShapesVocabulary.palette[colourIndex].name, shape: shape(fill: fill), area: area,
                centroid: ((sumX / Double(count) + 0.5) / Double(w), (sumY / Double(count) + 0.5) / Double(h)),
                fill: fill, mask: component))
        }
        // Pattern: the share of shade pixels in the background, and whether they form rows.
        var pattern: String?
        let backgroundCount = isBackground.filter { $0 }.count
        let shade = (0..<(w * h)).map { classes[$0] == backgroundIndex + colourCount && isBackground[$0] }
        if backgroundCount > 0, Double(shade.filter { $0 }.count) / Double(backgroundCount) > 0.08 {
            var mixed: [Double] = []
            for y in 0..<h {
                let row = (0..<w).filter { isBackground[y * w + $0] }
                guard row.count >= w / 4 else { continue }
                let fraction = Double(row.filter { shade[y * w + $0] }.count) / Double(row.count)
                mixed.append(min(fraction, 1 - fraction))
            }
            let mean = mixed.isEmpty ? 0 : mixed.reduce(0, +) / Double(mixed.count)
            pattern = mean < 0.12 ? "striped" : "dotted"
        }
        return Detection(background: ShapesVocabulary.palette[backgroundIndex].name, pattern: pattern, objects: objects,
                         objectMask: objectMask, width: w, height: h)
    }

    static func shape(fill: Double) -> String {
        fill >= 0.85 ? "square" : fill >= 0.665 ? "circle" : "triangle"
    }

    /// 4-connected components, largest first (ties: first found first).
    static func components(_ mask: [Bool], width w: Int, height h: Int) -> [[Bool]] {
        var label = [Int](repeating: 0, count: w * h)
        var found: [[Bool]] = []
        var current = 0
        for start in 0..<(w * h) where mask[start] && label[start] == 0 {
            current += 1
            var stack = [start]
            label[start] = current
            var members = [Bool](repeating: false, count: w * h)
            while let i = stack.popLast() {
                members[i] = true
                let (x, y) = (i % w, i / w)
                for (nx, ny) in [(x, y - 1), (x, y + 1), (x - 1, y), (x + 1, y)] where nx >= 0 && nx < w && ny >= 0 && ny < h {
                    let j = ny * w + nx
                    if mask[j] && label[j] == 0 {
                        label[j] = current
                        stack.append(j)
                    }
                }
            }
            found.append(members)
        }
        return found.enumerated().sorted { a, b in
            let (ca, cb) = (a.element.filter { $0 }.count, b.element.filter { $0 }.count)
            return ca != cb ? ca > cb : a.offset < b.offset
        }.map(\.element)
    }

    /// Area over (soft width x soft height), from each pixel's coverage: its position between
    /// the background and the object colour, within the component grown by one pixel.
    static func softFill(_ image: RGBImage, component: [Bool], background: (Double, Double, Double), colour: (Double, Double, Double)) -> Double {
        let (w, h) = (image.width, image.height)
        let direction = (colour.0 - background.0, colour.1 - background.1, colour.2 - background.2)
        let length = max(direction.0 * direction.0 + direction.1 * direction.1 + direction.2 * direction.2, 1e-6)
        var columns = [Double](repeating: 0, count: w), rows = [Double](repeating: 0, count: h)
        var total = 0.0
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                let near = component[i] || (y > 0 && component[i - w]) || (y < h - 1 && component[i + w])
                    || (x > 0 && component[i - 1]) || (x < w - 1 && component[i + 1])
                guard near else { continue }
                let p = (Double(image.pixels[i * 3]) - background.0, Double(image.pixels[i * 3 + 1]) - background.1,
                         Double(image.pixels[i * 3 + 2]) - background.2)
                let alpha = min(max((p.0 * direction.0 + p.1 * direction.1 + p.2 * direction.2) / length, 0), 1)
                total += alpha
                columns[x] = max(columns[x], alpha)
                rows[y] = max(rows[y], alpha)
            }
        }
        return total / max(columns.reduce(0, +) * rows.reduce(0, +), 1e-6)
    }
}
