import EditContract
import Foundation
import Imaging

/// A CLIP model as transformers' CLIPModel saves it (config.json with `text_config`,
/// `vision_config` and `projection_dim`; the weights; the tokenizer beside them): both towers and
/// both projections, giving L2-normalised features of pictures and texts.
struct CLIPModel: Sendable {
    let text: CLIPTextModel
    let vision: CLIPVisionModel
    let visualProjection: Linear
    let tokenizer: CLIPTokenizer
    /// CLIP's preprocessing constants (the OpenAI model's mean and standard deviation).
    static let mean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    static let std: [Float] = [0.26862954, 0.26130258, 0.27577711]

    init(directory: URL) throws {
        let configURL = directory.appendingPathComponent("config.json")
        let config = try ModelConfig(file: configURL)
        guard let textValues = config.values["text_config"]?.objectValue, let visionValues = config.values["vision_config"]?.objectValue else {
            throw ModelDirectoryError(path: configURL.path, problem: "is not a CLIPModel configuration (no text_config and vision_config)",
                                      fix: "give the folder CLIPModel.save_pretrained writes")
        }
        let projection = try config.size("projection_dim", default: 512)
        let weights = try SafeTensorsFile(url: try Self.weightsFile(in: directory))
        text = try CLIPTextModel(configuration: CLIPTextConfiguration(ModelConfig(values: textValues, file: configURL), projectionWidth: projection),
                                 weights: weights)
        guard text.hasProjection else {
            throw ModelDirectoryError(path: directory.path, problem: "has no text_projection", fix: "give the folder CLIPModel.save_pretrained writes")
        }
        let visionConfiguration = try CLIPVisionConfiguration(ModelConfig(values: visionValues, file: configURL))
        vision = try CLIPVisionModel(configuration: visionConfiguration, weights: weights)
        visualProjection = try Linear(Weights(weights), "visual_projection", input: visionConfiguration.width, output: projection, bias: false)
        tokenizer = try CLIPTokenizer(files: TokenizerFiles(directory: directory))
    }

    static func weightsFile(in directory: URL) throws -> URL {
        for name in ["model.safetensors", "pytorch_model.safetensors"] {
            let url = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        throw ModelDirectoryError(path: directory.path, problem: "has no model.safetensors", fix: "save the CLIPModel with safe_serialization=True")
    }

    /// The model's input for a picture: values in [0, 1], resized to the model's square side as
    /// the recipe resizes (`BicubicResize`), then normalised by CLIP's mean and deviation.
    func pixels(_ image: RGBImage) -> Tensor {
        let (height, width) = (image.height, image.width)
        var planar = [Float](repeating: 0, count: 3 * height * width)
        for (index, value) in image.pixels.enumerated() {
            let channel = index % 3, position = index / 3
            planar[channel * height * width + position] = Float(value) / 255
        }
        let side = vision.configuration.imageSize
        var resized = BicubicResize.resize(planar, channels: 3, height: height, width: width, toHeight: side, width: side)
        for channel in 0..<3 {
            let (mean, std) = (Self.mean[channel], Self.std[channel])
            for i in (channel * side * side)..<((channel + 1) * side * side) { resized[i] = (resized[i] - mean) / std }
        }
        return Tensor(shape: [1, 3, side, side], values: resized)
    }

    /// [B, projection] features of pictures, each of length 1.
    func imageFeatures(_ images: [RGBImage]) -> Tensor {
        let batch = Tensor.concatenate(images.map(pixels), axis: 0)
        return Self.normalised(visualProjection(vision(batch), precision: .fp32))
    }

    /// [B, projection] features of texts, each of length 1 (truncated to the tokenizer's
    /// length, as the recipe's tokenizer truncates).
    func textFeatures(_ texts: [String]) throws -> Tensor {
        let rows = try texts.map { prompt -> Tensor in
            // The pooled state is the end-of-text token's, which no padding after it changes.
            let ids = try tokenizer.tokenize(prompt, truncate: true)
            let end = (ids.firstIndex(of: tokenizer.endToken) ?? ids.count - 1) + 1
            guard let embeds = text.encode([Array(ids.prefix(end))]).textEmbeds else { preconditionFailure("checked at load") }
            return embeds
        }
        return Self.normalised(Tensor.concatenate(rows, axis: 0))
    }

    /// Each row divided by its length.
    static func normalised(_ rows: Tensor) -> Tensor {
        let width = rows.shape[1]
        var values = rows.scalars
        for r in 0..<rows.shape[0] {
            let range = (r * width)..<((r + 1) * width)
            let length = values[range].reduce(0) { $0 + $1 * $1 }.squareRoot()
            for i in range { values[i] /= length }
        }
        return Tensor(shape: rows.shape, values: values)
    }
}

/// The InstructPix2Pix recipe's scorer: a CLIP model's four similarities of an edit's pair.
public struct CLIPScorer: Sendable {
    let model: CLIPModel

    /// The CLIP model in `directory` (as transformers' CLIPModel saves it, with its tokenizer).
    public init(directory: URL) throws {
        model = try CLIPModel(directory: directory)
    }

    /// The scores of a source picture and its edit under their prompts.
    public func scores(source: RGBImage, edited: RGBImage, sourcePrompt: String, editedPrompt: String) throws -> PairScores {
        let images = model.imageFeatures([source, edited]).scalars
        let texts = try model.textFeatures([sourcePrompt, editedPrompt]).scalars
        let width = images.count / 2
        let (image0, image1) = (Array(images[..<width]), Array(images[width...]))
        let (text0, text1) = (Array(texts[..<width]), Array(texts[width...]))
        return PairScores(text0: Self.cosine(image0, text0), text1: Self.cosine(image1, text1),
                          direction: Self.cosine(zip(image1, image0).map(-), zip(text1, text0).map(-)),
                          image: Self.cosine(image0, image1))
    }

    /// torch's cosine_similarity: the dot product over the product of the lengths (at least 1e-8).
    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        let dot = zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        let squares = a.reduce(Float(0)) { $0 + $1 * $1 } * b.reduce(Float(0)) { $0 + $1 * $1 }
        return Double(dot / max(squares, 1e-16).squareRoot())
    }
}
