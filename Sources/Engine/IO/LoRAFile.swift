import EditContract
import Foundation

/// A LoRA file and the scale it is fused at, as `--lora PATH[:SCALE]` names it.
public struct LoRAChoice: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var scale: Float

    public init(path: String, scale: Float = 1) {
        self.path = path
        self.scale = scale
    }

    /// `PATH` or `PATH:SCALE` (the last colon separates the scale when it is a number).
    public init(parsing text: String) throws {
        if let colon = text.lastIndex(of: ":"), let scale = Float(text[text.index(after: colon)...]) {
            guard scale.isFinite else { throw EditError(field: "lora", problem: "'\(text)' has a scale that is not finite", fix: "write PATH:SCALE, e.g. lcm-lora.safetensors:1") }
            self.init(path: String(text[..<colon]), scale: scale)
        } else {
            self.init(path: text)
        }
        guard !path.isEmpty else { throw EditError(field: "lora", problem: "names no file", fix: "write PATH or PATH:SCALE") }
    }

    public var description: String { scale == 1 ? path : "\(path):\(scale)" }
}

/// One low-rank update of a weight: W + scale * up @ down, with up [out, r] and down
/// [r, in (x kh x kw)] (a convolution's down may be 3x3 and its up 1x1, as LoCon saves them).
struct LoRADelta: Sendable {
    let up: Tensor
    let down: Tensor
    /// The file's scale times alpha / r.
    let scale: Float

    /// `weight` with the update added: [out, ...].
    func applied(to weight: Tensor) -> Tensor {
        let (outputs, rank) = (weight.shape[0], down.shape[0])
        let product = up.reshaped([outputs, rank]).matmul(down.reshaped([rank, weight.count / outputs]))
        return weight.zipElements(product.reshaped(weight.shape)) { $0 + scale * $1 }
    }
}

/// The updates of one or more LoRA files, by component ("unet", "text_encoder",
/// "text_encoder_2") and weight name ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"),
/// fused into the weights when the model loads (`Weights`). Reads the two layouts LoRAs are
/// published in:
/// - diffusers/PEFT: `unet.<module>.lora_A.weight` and `lora_B.weight` (and diffusers' older
///   `<module>.lora.down/up.weight` and `processor.to_q_lora.down/up.weight`), alpha from the
///   file's `lora_adapter_metadata` (`unet.lora_alpha`, `unet.alpha_pattern`), else alpha = r;
/// - kohya: `lora_unet_<module with _ for .>.lora_down.weight`, `lora_up.weight` and `alpha`
///   (`lora_te_`, `lora_te1_`, `lora_te2_` for the text encoders), matched to the module whose
///   name it spells.
/// Anything else, a module the model does not have, or shapes that do not fit it is refused
/// by name.
struct LoRAUpdates: Sendable {
    private(set) var deltas: [String: [String: [LoRADelta]]] = [:]

    static let componentPrefixes = ["unet": "unet", "text_encoder": "text_encoder", "text_encoder_2": "text_encoder_2"]
    static let kohyaPrefixes = ["lora_unet_": "unet", "lora_te_": "text_encoder", "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2"]

    /// An update's two halves and alpha, as read.
    private struct Pair {
        var down: (name: String, entry: SafeTensorsFile.Entry)?
        var up: (name: String, entry: SafeTensorsFile.Entry)?
        var alpha: Float?
    }

    /// - Parameter weightShapes: each component's weight names and shapes (only components the
    ///   model has).
    init(_ choices: [LoRAChoice], weightShapes: [String: [String: [Int]]]) throws {
        for choice in choices {
            let url = URL(fileURLWithPath: choice.path)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelDirectoryError(path: url.path, problem: "does not exist", fix: "name a LoRA .safetensors file (diffusers/PEFT or kohya layout)")
            }
            try add(SafeTensorsFile(url: url), scale: choice.scale, weightShapes: weightShapes)
        }
    }

    var isEmpty: Bool { deltas.isEmpty }

    private mutating func add(_ file: SafeTensorsFile, scale: Float, weightShapes: [String: [String: [Int]]]) throws {
        let path = file.url.path
        func refuse(_ key: String, _ problem: String, _ fix: String) -> ModelDirectoryError {
            ModelDirectoryError(path: path, problem: "has \(key): \(problem)", fix: fix)
        }
        let metadata = Self.adapterMetadata(file)
        // (component, module) -> the pair's parts.
        var pairs: [String: [String: Pair]] = [:]
        var modules: [String: [String: String]] = [:]
        func module(spelled underscored: String, in component: String) -> String? {
            if modules[component] == nil {
                var table: [String: String] = [:]
                for name in (weightShapes[component] ?? [:]).keys where name.hasSuffix(".weight") {
                    let module = String(name.dropLast(".weight".count))
                    table[module.replacingOccurrences(of: ".", with: "_")] = module
                    // kohya spells text encoders' modules with transformers' prefix or without.
                    let spelled = Self.textModelAlternative(module).replacingOccurrences(of: ".", with: "_")
                    if table[spelled] == nil { table[spelled] = module }
                }
                modules[component] = table
            }
            return modules[component]?[underscored]
        }
        for (key, entry) in file.entries {
            guard let parsed = Self.parse(key, resolving: module(spelled:in:)) else {
                throw refuse(key, "not a key of a LoRA layout this engine reads",
                             "use a LoRA saved by diffusers/PEFT (lora_A/lora_B) or kohya (lora_down/lora_up/alpha); DoRA and LoHa are not supported")
            }
            let (component, module, part) = parsed
            guard weightShapes[component] != nil else {
                throw refuse(key, "an update of the \(component), which this model does not have", "use a LoRA made for this model's architecture")
            }
            var pair = pairs[component, default: [:]][module, default: Pair()]
            switch part {
            case .down: pair.down = (key, entry)
            case .up: pair.up = (key, entry)
            case .alpha:
                guard let value = try file.tensor(key).scalars.first, entry.shape.reduce(1, *) == 1 else {
                    throw refuse(key, "an alpha that is not one number", "use an unaltered LoRA file")
                }
                pair.alpha = value
            }
            pairs[component, default: [:]][module] = pair
        }
        for (component, byModule) in pairs {
            for (module, pair) in byModule {
                guard let down = pair.down, let up = pair.up else {
                    throw refuse(module, "one half of an update (\(pair.down == nil ? "down/lora_A" : "up/lora_B") is missing)", "use an unaltered LoRA file")
                }
                guard let weightName = Self.weightName(of: module, in: weightShapes[component] ?? [:]),
                      let weightShape = weightShapes[component]?[weightName] else {
                    throw refuse(down.name, "an update of \(component).\(module), which this model does not have",
                                 "use a LoRA made for this model (kohya files of SDXL in the original SGM layout are not mapped; convert them with diffusers)")
                }
                let rank = down.entry.shape.first ?? 0
                let outputs = weightShape[0], inputs = weightShape.dropFirst().reduce(1, *)
                let downCount = down.entry.shape.reduce(1, *), upCount = up.entry.shape.reduce(1, *)
                guard rank > 0, up.entry.shape.first == outputs, upCount == outputs * rank, downCount == rank * inputs else {
                    throw refuse(down.name, "shapes \(down.entry.shape) and \(up.entry.shape), which do not update \(component).\(weightName) of shape \(weightShape)",
                                 "use a LoRA made for this model's architecture")
                }
                let alpha = pair.alpha ?? metadata.alpha(component: component, module: module) ?? Float(rank)
                let delta = LoRADelta(up: try file.tensor(up.name), down: try file.tensor(down.name), scale: scale * alpha / Float(rank))
                deltas[component, default: [:]][weightName, default: []].append(delta)
            }
        }
    }

    enum Part { case down, up, alpha }

    /// The weight a module's update applies to: `module.weight`, or, for text encoders, the
    /// same with or without transformers' `text_model.` prefix (which some versions save and
    /// others drop, so a LoRA and a model may disagree on it).
    static func weightName(of module: String, in shapes: [String: [Int]]) -> String? {
        [module, textModelAlternative(module)].map { $0 + ".weight" }.first { shapes[$0] != nil }
    }

    /// `module` with transformers' `text_model.` prefix removed, or added when it has none.
    static func textModelAlternative(_ module: String) -> String {
        let prefix = "text_model."
        return module.hasPrefix(prefix) ? String(module.dropFirst(prefix.count)) : prefix + module
    }

    /// The component, module and part a key names, or nil for a key of no known layout.
    static func parse(_ key: String, resolving module: (String, String) -> String?) -> (String, String, Part)? {
        for (prefix, component) in kohyaPrefixes where key.hasPrefix(prefix) {
            let rest = String(key.dropFirst(prefix.count))
            for (suffix, part) in [(".lora_down.weight", Part.down), (".lora_up.weight", .up), (".alpha", .alpha)] where rest.hasSuffix(suffix) {
                let spelled = String(rest.dropLast(suffix.count))
                // An unknown module is reported with the update's own key, below.
                return (component, module(spelled, component) ?? spelled.replacingOccurrences(of: "_", with: "."), part)
            }
            return nil
        }
        guard let dot = key.firstIndex(of: "."), let component = componentPrefixes[String(key[..<dot])] else { return nil }
        var rest = String(key[key.index(after: dot)...])
        // diffusers' older attention-processor names.
        for (old, new) in [("processor.to_q_lora", "to_q"), ("processor.to_k_lora", "to_k"), ("processor.to_v_lora", "to_v"), ("processor.to_out_lora", "to_out.0")] {
            rest = rest.replacingOccurrences(of: old, with: new + ".lora")
        }
        let suffixes: [(String, Part)] = [(".lora_A.weight", .down), (".lora_B.weight", .up), (".lora_A.default.weight", .down),
                                          (".lora_B.default.weight", .up), (".lora.down.weight", .down), (".lora.up.weight", .up), (".alpha", .alpha)]
        for (suffix, part) in suffixes where rest.hasSuffix(suffix) {
            return (component, String(rest.dropLast(suffix.count)), part)
        }
        return nil
    }

    /// PEFT's alphas as diffusers saves them in the file's metadata.
    struct AdapterMetadata {
        var values: [String: JSONValue] = [:]

        func alpha(component: String, module: String) -> Float? {
            if let patterns = values["\(component).alpha_pattern"]?.objectValue {
                // PEFT matches a pattern against the end of the module's name.
                for (pattern, value) in patterns.sorted(by: { $0.key.count > $1.key.count })
                where module == pattern || module.hasSuffix("." + pattern) {
                    if let alpha = value.doubleValue { return Float(alpha) }
                }
            }
            return values["\(component).lora_alpha"]?.doubleValue.map(Float.init)
        }
    }

    static func adapterMetadata(_ file: SafeTensorsFile) -> AdapterMetadata {
        guard let text = file.metadata["lora_adapter_metadata"], let object = (try? JSONValue.parse(Data(text.utf8)))?.objectValue else {
            return AdapterMetadata()
        }
        return AdapterMetadata(values: object)
    }
}
