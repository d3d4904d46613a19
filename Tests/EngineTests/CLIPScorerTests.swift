import EditContract
@testable import Engine
import Foundation
import Imaging
import Testing

/// The CLIP scorer against transformers' CLIPModel on a tiny random model, with the
/// InstructPix2Pix recipe's preprocessing (reference/make_fixtures.py clip).
@Suite("CLIP scores against transformers")
struct CLIPScorerTests {
    struct IO: Decodable { let texts: [String]; let images: [String] }

    @Test("resized pixels, picture and text features and the recipe's four similarities equal transformers' (1e-5)")
    func tinyCLIP() throws {
        let folder = Fixtures.url("tiny-clip")
        let io = try JSONDecoder().decode(IO.self, from: Data(contentsOf: folder.appendingPathComponent("io.json")))
        let reference = try SafeTensorsFile(url: folder.appendingPathComponent("io.safetensors"))
        let model = try CLIPModel(directory: folder)
        let images = try io.images.map { try PNGCodec.read(folder.appendingPathComponent($0)) }
        #expect(images[0].width == 56 && images[0].height == 72, "a picture that is not square")

        let pixels = Tensor.concatenate(images.map(model.pixels), axis: 0)
        let pixelError = pixels.maxAbsDifference(try reference.tensor("pixel_values"))
        let imageError = model.imageFeatures(images).maxAbsDifference(try reference.tensor("image_features"))
        let textError = try model.textFeatures(io.texts).maxAbsDifference(try reference.tensor("text_features"))
        let scores = try CLIPScorer(directory: folder).scores(source: images[0], edited: images[1], sourcePrompt: io.texts[0], editedPrompt: io.texts[1])
        let expected = try reference.tensor("similarities").scalars
        let scoreError = zip([scores.text0, scores.text1, scores.direction, scores.image], expected).map { abs($0 - Double($1)) }.max() ?? 1
        print("[reference] tiny CLIP: max abs error pixels \(pixelError), image features \(imageError), text features \(textError), similarities \(scoreError) (\(scores))")
        #expect(pixelError <= 1e-5 && imageError <= 1e-5 && textError <= 1e-5 && scoreError <= 1e-5)
        // Scores are not symmetric in the pair: the direction turns with the pair.
        let swapped = try CLIPScorer(directory: folder).scores(source: images[1], edited: images[0], sourcePrompt: io.texts[1], editedPrompt: io.texts[0])
        #expect(abs(swapped.direction - scores.direction) < 1e-6 && abs(swapped.text0 - scores.text1) < 1e-6)
    }

    @Test("bicubic resizing is torch's: identity at the same size, and a constant stays constant")
    func bicubic() {
        let values = (0..<(2 * 5 * 7)).map { Float($0 % 11) / 10 }
        #expect(BicubicResize.resize(values, channels: 2, height: 5, width: 7, toHeight: 5, width: 7) == values)
        let constant = BicubicResize.resize([Float](repeating: 0.25, count: 64), channels: 1, height: 8, width: 8, toHeight: 3, width: 5)
        #expect(constant.allSatisfy { abs($0 - 0.25) < 1e-6 })
        let weights = BicubicResize.coefficients(0.3)
        #expect(abs(weights.reduce(0, +) - 1) < 1e-6)
    }

    @Test("a folder that is not a CLIPModel is refused by name")
    func refusals() throws {
        #expect(throws: ModelDirectoryError.self) { try CLIPModel(directory: Fixtures.url("tiny-sd/text_encoder")) }
    }
}
