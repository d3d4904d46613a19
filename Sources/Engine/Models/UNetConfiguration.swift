import EditContract
/// Everything about a UNet2DConditionModel's architecture, read from its config.json with
/// diffusers' defaults. Options this engine cannot run are refused by name.
public struct UNetConfiguration: Sendable {
    public let inChannels: Int
    let outChannels: Int
    let blockOutChannels: [Int]
    let downBlockTypes: [String]
    let upBlockTypes: [String]
    let hasMidBlock: Bool
    let layersPerBlock: [Int]
    let transformerLayersPerBlock: [Int]
    /// Attention heads per down block (diffusers' `num_attention_heads`, or, as SD 1.x and 2.x
    /// configs mean it, `attention_head_dim`).
    let heads: [Int]
    public let crossAttentionWidth: Int
    let linearProjection: Bool
    let normGroups: Int
    let normEpsilon: Float
    let flipSinToCos: Bool
    let frequencyShift: Float
    /// A class embedding table (super-resolution noise levels), or a timestep-style embedding.
    let classEmbedding: ClassEmbedding?
    let centerInputSample: Bool
    /// SDXL's added conditioning (`addition_embed_type: text_time`): nil for SD 1.x and 2.x.
    public let textTimeEmbedding: TextTimeEmbedding?
    /// `time_cond_proj_dim`: the width of a guidance-scale embedding projected into the timestep
    /// embedding (LCM-distilled UNets, which take guidance as an input instead of a second
    /// row); nil for UNets guided the usual way.
    public let guidanceEmbeddingWidth: Int?

    /// The widths of SDXL's added embedding: each of the six time ids (original size, crop
    /// corner, target size) becomes `timeIDWidth` sinusoidal features, which follow the pooled
    /// text embedding into a two-layer MLP added to the timestep embedding.
    public struct TextTimeEmbedding: Sendable, Equatable {
        static let timeIDs = 6
        /// `addition_time_embed_dim`.
        let timeIDWidth: Int
        /// `projection_class_embeddings_input_dim`: the pooled width plus six time ids' features.
        let inputWidth: Int
        /// The pooled text embedding's width (1280 in SDXL).
        public var pooledWidth: Int { inputWidth - Self.timeIDs * timeIDWidth }
    }

    enum ClassEmbedding: Sendable, Equatable {
        case table(count: Int)
        case timestep
    }

    static let crossDown = "CrossAttnDownBlock2D", plainDown = "DownBlock2D"
    static let crossUp = "CrossAttnUpBlock2D", plainUp = "UpBlock2D"

    public init(_ config: ModelConfig) throws {
        func refuse(_ key: String, _ value: String, _ supported: String) -> ModelDirectoryError {
            ModelDirectoryError(path: config.file.path, problem: "sets \(key) = \(value), which this engine does not run",
                                fix: "use a UNet with \(supported)")
        }
        inChannels = try config.size("in_channels", default: 4)
        outChannels = try config.size("out_channels", default: 4)
        blockOutChannels = try config.sizes("block_out_channels", default: [320, 640, 1280, 1280])
        let levels = blockOutChannels.count
        downBlockTypes = try config.strings("down_block_types", default: [Self.crossDown, Self.crossDown, Self.crossDown, Self.plainDown])
        upBlockTypes = try config.strings("up_block_types", default: [Self.plainUp, Self.crossUp, Self.crossUp, Self.crossUp])
        guard downBlockTypes.count == levels, upBlockTypes.count == levels else {
            throw ModelDirectoryError(path: config.file.path, problem: "has \(levels) block_out_channels but \(downBlockTypes.count) down and \(upBlockTypes.count) up blocks",
                                      fix: "give one down and one up block type per level")
        }
        for type in downBlockTypes where type != Self.crossDown && type != Self.plainDown {
            throw refuse("a down block type", type, "\(Self.crossDown) and \(Self.plainDown) blocks")
        }
        for type in upBlockTypes where type != Self.crossUp && type != Self.plainUp {
            throw refuse("an up block type", type, "\(Self.crossUp) and \(Self.plainUp) blocks")
        }
        let mid = try config.optionalString("mid_block_type") ?? (config.values["mid_block_type"] == .null ? "none" : "UNetMidBlock2DCrossAttn")
        guard mid == "UNetMidBlock2DCrossAttn" || mid == "none" else { throw refuse("mid_block_type", mid, "UNetMidBlock2DCrossAttn") }
        hasMidBlock = mid != "none"
        layersPerBlock = try config.sizeOrSizes("layers_per_block", count: levels, default: 2)
        transformerLayersPerBlock = try config.sizeOrSizes("transformer_layers_per_block", count: levels, default: 1)
        if config.contains("num_attention_heads") {
            heads = try config.sizeOrSizes("num_attention_heads", count: levels)
        } else {
            heads = try config.sizeOrSizes("attention_head_dim", count: levels, default: 8)
        }
        if let widths = try? config.ints("cross_attention_dim"), Set(widths).count == 1, let width = widths.first {
            crossAttentionWidth = width
        } else {
            crossAttentionWidth = try config.size("cross_attention_dim", default: 1280)
        }
        linearProjection = try config.bool("use_linear_projection", default: false)
        normGroups = try config.size("norm_num_groups", default: 32)
        for channels in blockOutChannels where channels % normGroups != 0 {
            throw ModelDirectoryError(path: config.file.path, problem: "has block_out_channels \(blockOutChannels), not all divisible by norm_num_groups = \(normGroups)",
                                      fix: "correct the configuration (the original model's values)")
        }
        normEpsilon = Float(try config.double("norm_eps", default: 1e-5))
        flipSinToCos = try config.bool("flip_sin_to_cos", default: true)
        frequencyShift = Float(try config.double("freq_shift", default: 0))
        centerInputSample = try config.bool("center_input_sample", default: false)
        switch try config.optionalString("class_embed_type") {
        case nil:
            classEmbedding = try config.optionalInt("num_class_embeds").map { .table(count: $0) }
        case "timestep":
            classEmbedding = .timestep
        case let other?:
            throw refuse("class_embed_type", other, "no class embedding, num_class_embeds, or class_embed_type \"timestep\"")
        }
        switch try config.optionalString("addition_embed_type") {
        case nil:
            textTimeEmbedding = nil
        case "text_time":
            let timeIDWidth = try config.size("addition_time_embed_dim")
            let inputWidth = try config.size("projection_class_embeddings_input_dim")
            guard timeIDWidth % 2 == 0, inputWidth > TextTimeEmbedding.timeIDs * timeIDWidth else {
                throw ModelDirectoryError(path: config.file.path,
                                          problem: "has projection_class_embeddings_input_dim \(inputWidth) and addition_time_embed_dim \(timeIDWidth): no room for a pooled text embedding beside six even-width time ids",
                                          fix: "correct the configuration (SDXL: 2816 and 256)")
            }
            textTimeEmbedding = TextTimeEmbedding(timeIDWidth: timeIDWidth, inputWidth: inputWidth)
        case let other?:
            throw refuse("addition_embed_type", other, "no added embedding, or SDXL's text_time")
        }
        guidanceEmbeddingWidth = try config.optionalInt("time_cond_proj_dim")
        if let width = guidanceEmbeddingWidth, width < 1 { throw refuse("time_cond_proj_dim", "\(width)", "a positive width (256 in LCM checkpoints)") }
        // Options that change the architecture in ways this engine does not implement.
        let unsupported: [(String, JSONValue)] = [
            ("encoder_hid_dim", .null),
            ("timestep_post_act", .null), ("time_embedding_act_fn", .null),
            ("only_cross_attention", .bool(false)), ("dual_cross_attention", .bool(false)),
            ("resnet_time_scale_shift", .string("default")), ("act_fn", .string("silu")),
            ("time_embedding_type", .string("positional")), ("conv_in_kernel", .int(3)), ("conv_out_kernel", .int(3)),
            ("class_embeddings_concat", .bool(false)), ("resnet_skip_time_act", .bool(false)),
            ("attention_type", .string("default")), ("downsample_padding", .int(1)), ("mid_block_only_cross_attention", .null),
            ("reverse_transformer_layers_per_block", .null),
        ]
        for (key, expected) in unsupported {
            if let value = config.values[key], value != expected, !(value == .null && expected == .bool(false)) {
                throw refuse(key, "\(value)", "\(key) = \(expected)")
            }
        }
        if let scale = config.values["mid_block_scale_factor"]?.doubleValue, scale != 1 { throw refuse("mid_block_scale_factor", "\(scale)", "1") }
        for (i, channels) in blockOutChannels.enumerated() where channels % heads[i] != 0 || channels % normGroups != 0 {
            throw ModelDirectoryError(path: config.file.path, problem: "has \(channels) channels at level \(i), not divisible by its \(heads[i]) heads and \(normGroups) groups",
                                      fix: "correct the configuration")
        }
    }

    /// The width of the time embedding: 4x the first level's channels.
    var timeEmbeddingWidth: Int { blockOutChannels[0] * 4 }
}
