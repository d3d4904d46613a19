import Engine
import Evaluation
import Foundation
import Imaging
import Testing

@Suite("shapes world: the Swift renderer and detectors against the Python ones")
struct ShapesWorldTests {
    struct Case: Decodable {
        struct SceneJSON: Decodable {
            struct Object: Decodable { let shape, colour, size: String; let x, y, radius: Double }
            let background: String
            let pattern: String?
            let position_words: String?
            let size_stated: [Bool]
            let objects: [Object]
        }
        struct Found: Decodable {
            struct Object: Decodable { let colour, shape: String; let fill, area: Double; let centroid: [Double] }
            let background: String
            let pattern: String?
            let objects: [Object]
        }
        let image: String
        let size: Int
        let caption: String
        let scene: SceneJSON
        let detected: Found

        var swiftScene: Scene {
            Scene(background: scene.background, pattern: scene.pattern,
                  objects: scene.objects.map { SceneObject(shape: $0.shape, colour: $0.colour, size: $0.size, x: $0.x, y: $0.y, radius: $0.radius) },
                  positionWords: scene.position_words, sizeStated: scene.size_stated)
        }
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/shapes-world")
    static let cases: [Case] = { try! JSONDecoder().decode([Case].self, from: Data(contentsOf: root.appendingPathComponent("cases.json"))) }()

    @Test("captions and renders equal Python's, pixel for pixel")
    func renders() throws {
        for c in Self.cases {
            #expect(c.swiftScene.caption == c.caption)
            let expected = try PNGCodec.read(Self.root.appendingPathComponent(c.image))
            let actual = SceneRenderer.render(c.swiftScene, size: c.size)
            let differing = zip(actual.pixels, expected.pixels).filter { $0 != $1 }.count
            #expect(differing == 0, "\(c.image): \(differing) samples differ")
        }
    }

    @Test("detections equal Python's")
    func detections() throws {
        for c in Self.cases {
            let found = SceneDetector.detect(try PNGCodec.read(Self.root.appendingPathComponent(c.image)))
            #expect(found.background == c.detected.background && found.pattern == c.detected.pattern, "\(c.image)")
            #expect(found.objects.count == c.detected.objects.count, "\(c.image)")
            for (a, b) in zip(found.objects, c.detected.objects) {
                #expect(a.colour == b.colour && a.shape == b.shape, "\(c.image)")
                #expect(abs(a.fill - b.fill) < 1e-9 && abs(a.area - b.area) < 1e-12, "\(c.image)")
                #expect(abs(a.centroid.x - b.centroid[0]) < 1e-9 && abs(a.centroid.y - b.centroid[1]) < 1e-9, "\(c.image)")
            }
        }
    }

    @Test("the detectors read exact renders of random scenes correctly")
    func detectorAccuracy() {
        var generator = SplitMix64(seed: 5)
        let sampler = SceneSampler()
        var correct = 0
        let total = 150
        for _ in 0..<total {
            let scene = sampler.sample(using: &generator)
            let found = SceneDetector.detect(SceneRenderer.render(scene, size: 32))
            if ShapesWorldScore.matchesInDrawingOrder(scene, found) { correct += 1 }
        }
        // Exact renders are read right almost always (small shapes at 32 px are the hard part).
        #expect(Double(correct) / Double(total) >= 0.95, "\(correct) of \(total)")
    }

    @Test("a pair's caption is matched in either order; its colours and shapes are not")
    func pairScoring() {
        let left = SceneObject(shape: "triangle", colour: "blue", size: "big", x: 0.27, y: 0.5, radius: 0.17)
        let right = SceneObject(shape: "circle", colour: "red", size: "big", x: 0.73, y: 0.5, radius: 0.17)
        let scene = Scene(background: "white", pattern: nil, objects: [left, right])
        func swapped(_ change: (inout SceneObject, inout SceneObject) -> Void) -> Detection {
            var (a, b) = (left, right)
            change(&a, &b)
            return SceneDetector.detect(SceneRenderer.render(Scene(background: "white", pattern: nil, objects: [a, b]), size: 64))
        }
        let asDrawn = swapped { _, _ in }
        #expect(ShapesWorldScore.matches(scene, asDrawn) && ShapesWorldScore.matchesInDrawingOrder(scene, asDrawn))
        // The red circle on the left: what the caption says, not the order it was drawn in.
        let mirrored = swapped { a, b in swap(&a.x, &b.x) }
        #expect(ShapesWorldScore.matches(scene, mirrored))
        #expect(!ShapesWorldScore.matchesInDrawingOrder(scene, mirrored))
        // Colours bound to the wrong shapes: a red triangle and a blue circle.
        let rebound = swapped { a, b in swap(&a.colour, &b.colour) }
        #expect(!ShapesWorldScore.matches(scene, rebound))
        let recoloured = swapped { a, _ in a.colour = "green" }
        #expect(!ShapesWorldScore.matches(scene, recoloured))
    }
}
