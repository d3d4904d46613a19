import EditContract
import Foundation

/// SDXL's additions to a Stable Diffusion pipeline: a second tokenizer and text encoder beside
/// the first, whose pooled projection and six size time ids feed the UNet's text_time
/// embedding. They come together or not at all, so a model holds them as one optional value,
/// and the checks that they fit the rest of the model, and an edit or settings them, are here.
struct SDXLConditioning: Sendable {
    /// `tokenizer_2`.
    let tokenizer: CLIPTokenizer
    /// `text_encoder_2` (CLIPTextModelWithProjection): its penultimate hidden state follows the
    /// first encoder's in the context; its projection has the UNet's pooled width.
    let encoder: CLIPTextModel
    /// The UNet's `addition_embed_type: text_time` embedding.
    let embedding: UNetConfiguration.TextTimeEmbedding
    /// With no negative prompt, guidance's unconditional half is zeros rather than the empty
    /// prompt's encoding (model_index.json's `force_zeros_for_empty_prompt`, an option of
    /// diffusers' SDXL pipelines).
    let forceZerosForEmptyPrompt: Bool

    /// The SDXL parts of `directory`, whose UNet is `unet`; nil for a model without them (SD 1.x
    /// and 2.x). Refuses a second text encoder without SDXL's UNet and the reverse, a projection
    /// of another width than the UNet's pooled one, and a second tokenizer its encoder cannot take.
    static func load(from directory: ModelDirectory, unet: UNetConfiguration, updates: [String: [LoRADelta]] = [:]) throws -> SDXLConditioning? {
        let url = directory.url
        switch (directory.components["text_encoder_2"] != nil, unet.textTimeEmbedding) {
        case (false, nil):
            return nil
        case (false, _?):
            throw ModelDirectoryError(path: url.path, problem: "has a UNet with SDXL's text_time embedding but no text_encoder_2",
                                      fix: "use a complete StableDiffusionXLPipeline folder")
        case (true, nil):
            throw ModelDirectoryError(path: url.path, problem: "has a text_encoder_2 but a UNet without added embeddings",
                                      fix: "use components that belong together")
        case (true, let embedding?):
            let encoder = try CLIPTextModel(component: directory.component("text_encoder_2", supportedClasses: ["CLIPTextModelWithProjection"]),
                                            updates: updates)
            guard encoder.hasProjection, encoder.configuration.projectionWidth == embedding.pooledWidth else {
                let projection = encoder.hasProjection ? "projects to \(encoder.configuration.projectionWidth)" : "has no text_projection"
                throw ModelDirectoryError(path: url.path,
                                          problem: "has a UNet expecting a pooled text embedding of width \(embedding.pooledWidth) but text_encoder_2 \(projection)",
                                          fix: "use components that belong together")
            }
            let tokenizer = try CLIPTokenizer(files: directory.tokenizerFiles(component: "tokenizer_2"))
            try DiffusionModel.check(tokenizer, fits: encoder, url: url)
            let index = ModelConfig(values: directory.index, file: url.appendingPathComponent("model_index.json"))
            return SDXLConditioning(tokenizer: tokenizer, encoder: encoder, embedding: embedding,
                                    forceZerosForEmptyPrompt: try index.bool("force_zeros_for_empty_prompt", default: false))
        }
    }

    /// Refuses size conditioning a model cannot take, naming the key given: any value on a model
    /// without SDXL (`sdxl` nil), and values that are not pairs.
    static func check(_ size: SizeConditioning, on sdxl: SDXLConditioning?) throws {
        for (key, value) in size.given {
            guard sdxl != nil else {
                throw EditError(field: key.rawValue, problem: "has no effect on this model: only SDXL's UNet takes size conditioning",
                                fix: "remove it, or use an SDXL model")
            }
            guard value.count == 2 else {
                throw EditError(field: key.rawValue, problem: "\(value) is not two numbers",
                                fix: key == .originalSize ? "give [height, width] in pixels, e.g. [1024, 1024]" : "give [top, left] in pixels, e.g. [0, 0]")
            }
        }
    }

    /// Refuses a prompt that `tokenizer_2` splits otherwise than the first tokenizer did
    /// (`tokens`): the two encoders' states sit side by side per token, and Prompt-to-Prompt's
    /// word indices count the first tokenizer's tokens (SDXL's two CLIP tokenizers share one
    /// vocabulary and merges; only their padding differs).
    func checkSplitsAlike(_ prompt: String, as tokens: [Int], field: String) throws {
        guard tokenizer.encode(prompt) == tokens else {
            throw EditError(field: field, problem: "is split into different tokens by the model's two tokenizers (tokenizer and tokenizer_2)",
                            fix: "use a model whose tokenizer and tokenizer_2 share a vocabulary, as SDXL's do")
        }
    }

    /// The context of `prompts` as diffusers' StableDiffusionXLPipeline builds it, both
    /// encoders' penultimate hidden states side by side ([B, 77, w1 + w2]) with `first` the first
    /// encoder's, and the second's pooled projection [B, pooledWidth].
    func encode(_ prompts: [String], first: CLIPTextEncoding, truncate: Bool, precision: Precision) throws -> (context: Tensor, pooled: Tensor) {
        let second = encoder.encode(try prompts.map { try tokenizer.tokenize($0, truncate: truncate) }, precision: precision)
        guard let pooled = second.textEmbeds else { preconditionFailure("text_encoder_2 was loaded with a text_projection") }
        return (Tensor.concatenate([first.penultimateHiddenState, second.penultimateHiddenState], axis: -1), pooled)
    }
}
