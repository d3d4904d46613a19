import EditContract
import Engine
import Foundation

/// Where the embedded default model is: $PTP_MODEL, else models/shapes-world next to the
/// build tree or installation the executable runs from, else in the working directory.
enum ModelLocation {
    static func defaultModel() -> URL? {
        let manager = FileManager.default
        if let path = ProcessInfo.processInfo.environment["PTP_MODEL"], !path.isEmpty { return URL(fileURLWithPath: path) }
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var candidates: [URL] = []
        var folder = executable.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(folder.appendingPathComponent("models/shapes-world"))
            candidates.append(folder.appendingPathComponent("share/ptp/models/shapes-world"))
            folder = folder.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: manager.currentDirectoryPath).appendingPathComponent("models/shapes-world"))
        return candidates.first { manager.fileExists(atPath: $0.appendingPathComponent("model_index.json").path) }
    }

    /// The model to use: `--model`, else the embedded default.
    static func resolve(_ option: String?) throws -> URL {
        if let option { return URL(fileURLWithPath: option) }
        guard let url = defaultModel() else {
            throw CommandError("--model: no model given and the embedded model (models/shapes-world) was not found; pass --model DIR or set PTP_MODEL")
        }
        return url
    }

    /// Loads a model, with `lora` files (`PATH[:SCALE]`) fused into it, reporting how long it took.
    static func load(_ option: String?, lora: [String] = []) throws -> DiffusionModel {
        let url = try resolve(option)
        let choices = try lora.map { text in
            do { return try LoRAChoice(parsing: text) } catch let error as EditError { throw CommandError("--lora: \(error.problem); \(error.fix)") }
        }
        let start = Date()
        let model = try DiffusionModel(directory: url, lora: choices)
        note(String(format: "loaded %@ in %.1f s", model.identifier, Date().timeIntervalSince(start)))
        return model
    }
}

/// A command-line problem, printed as is.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
