import EditContract
import Foundation

/// A problem with a model directory, naming the file or component and how to fix it.
struct ModelDirectoryError: Error, CustomStringConvertible, Equatable {
    let path: String
    let problem: String
    let fix: String
    var description: String { "\(path) \(problem): \(fix)" }
}

/// A diffusers-format model directory: `model_index.json` naming the components, each in its
/// own folder with `config.json` (or `scheduler_config.json`) and safetensors weights.
public struct ModelDirectory: Sendable {
    let url: URL
    /// Component name -> (library, class name), from model_index.json.
    let components: [String: (library: String, className: String)]
    /// The pipeline class recorded in model_index.json (`_class_name`).
    let pipelineClass: String
    /// All of model_index.json, including keys this project adds (such as recommended settings).
    let index: [String: JSONValue]

    public init(url: URL) throws {
        self.url = url
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelDirectoryError(path: url.path, problem: "is not a directory",
                                      fix: "pass the folder of a diffusers model (the one holding model_index.json)")
        }
        let indexURL = url.appendingPathComponent("model_index.json")
        guard FileManager.default.fileExists(atPath: indexURL.path) else {
            throw ModelDirectoryError(path: indexURL.path, problem: "is missing",
                                      fix: "pass the folder of a diffusers model (saved with save_pretrained)")
        }
        let config = try ModelConfig(file: indexURL)
        index = config.values
        pipelineClass = try config.string("_class_name", default: "DiffusionPipeline")
        var components: [String: (String, String)] = [:]
        for (key, value) in config.values where !key.hasPrefix("_") {
            // Components are ["library", "ClassName"]; null entries are disabled parts.
            guard let pair = value.arrayValue, pair.count == 2,
                  let library = pair[0].stringValue, let className = pair[1].stringValue else { continue }
            components[key] = (library, className)
        }
        self.components = components
    }

    /// The named component, which must be listed in model_index.json and be of one of
    /// `supportedClasses` (when given).
    public func component(_ name: String, supportedClasses: [String]? = nil) throws -> ModelComponent {
        guard let (_, className) = components[name] else {
            throw ModelDirectoryError(path: url.appendingPathComponent("model_index.json").path,
                                      problem: "lists no '\(name)' component",
                                      fix: "use a model that has one (listed: \(components.keys.sorted().joined(separator: ", ")))")
        }
        if let supportedClasses, !supportedClasses.contains(className) {
            throw ModelDirectoryError(path: url.appendingPathComponent(name).path,
                                      problem: "is a \(className), which this engine does not run",
                                      fix: "use a model whose \(name) is one of \(supportedClasses.joined(separator: ", "))")
        }
        return try ModelComponent(name: name, className: className, directory: url.appendingPathComponent(name))
    }

    /// The tokenizer's files.
    func tokenizerFiles(component name: String = "tokenizer") throws -> TokenizerFiles {
        try TokenizerFiles(directory: url.appendingPathComponent(name))
    }
}

/// Where a CLIP BPE tokenizer's vocabulary and merges come from.
struct TokenizerFiles: Sendable {
    enum Source: Sendable {
        case vocabularyAndMerges(vocabulary: URL, merges: URL)
        case tokenizerJSON(URL)
    }
    let source: Source
    let config: ModelConfig?
    let specialTokens: ModelConfig?

    /// The tokenizer files of a folder: vocab.json + merges.txt, else tokenizer.json, with
    /// tokenizer_config.json and special_tokens_map.json when present.
    init(directory: URL) throws {
        let manager = FileManager.default
        func file(_ name: String) -> URL? {
            let url = directory.appendingPathComponent(name)
            return manager.fileExists(atPath: url.path) ? url : nil
        }
        config = try file("tokenizer_config.json").map { try ModelConfig(file: $0) }
        specialTokens = try file("special_tokens_map.json").map { try ModelConfig(file: $0) }
        if let vocabulary = file("vocab.json"), let merges = file("merges.txt") {
            source = .vocabularyAndMerges(vocabulary: vocabulary, merges: merges)
        } else if let json = file("tokenizer.json") {
            source = .tokenizerJSON(json)
        } else {
            throw ModelDirectoryError(path: directory.path, problem: "has neither vocab.json + merges.txt nor tokenizer.json",
                                      fix: "copy the tokenizer files of the original model into it")
        }
    }
}

/// One component folder of a model directory.
public struct ModelComponent: Sendable {
    let name: String
    let className: String
    public let directory: URL
    public let config: ModelConfig
    /// The safetensors file chosen for this component, or nil for weightless parts (scheduler).
    let weightsURL: URL?

    /// Weight files in order of preference.
    static let weightFileNames = [
        "diffusion_pytorch_model.safetensors", "model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
    ]

    /// A component folder on its own (config plus weights), outside a model directory.
    init(directory: URL) throws {
        try self.init(name: directory.lastPathComponent, className: "", directory: directory)
    }

    init(name: String, className: String, directory: URL) throws {
        self.name = name
        self.className = className
        self.directory = directory
        let manager = FileManager.default
        guard manager.fileExists(atPath: directory.path) else {
            throw ModelDirectoryError(path: directory.path, problem: "is missing",
                                      fix: "model_index.json lists '\(name)'; copy that folder from the original model")
        }
        let configNames = ["config.json", "scheduler_config.json", "tokenizer_config.json"]
        guard let configName = configNames.first(where: { manager.fileExists(atPath: directory.appendingPathComponent($0).path) }) else {
            throw ModelDirectoryError(path: directory.path, problem: "has no config.json or scheduler_config.json",
                                      fix: "copy the component's configuration file from the original model")
        }
        config = try ModelConfig(file: directory.appendingPathComponent(configName))
        if let found = Self.weightFileNames.first(where: { manager.fileExists(atPath: directory.appendingPathComponent($0).path) }) {
            weightsURL = directory.appendingPathComponent(found)
        } else {
            weightsURL = nil
        }
    }

    /// Opens the component's weights.
    func weights() throws -> SafeTensorsFile {
        guard let weightsURL else {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            if let pickle = files.first(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".ckpt") || $0.hasSuffix(".pt") }) {
                throw ModelDirectoryError(path: directory.appendingPathComponent(pickle).path,
                                          problem: "is a PyTorch pickle, which is not loaded (it can run arbitrary code)",
                                          fix: "convert it once to safetensors, e.g. with diffusers: pipe.save_pretrained(dir, safe_serialization=True)")
            }
            throw ModelDirectoryError(path: directory.path, problem: "has no weights file",
                                      fix: "add one of \(Self.weightFileNames.joined(separator: ", "))")
        }
        return try SafeTensorsFile(url: weightsURL)
    }
}
