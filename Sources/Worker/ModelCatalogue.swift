import EditContract
import Engine
import Foundation
import Logging
import Wire

/// The models a worker serves, loaded once, under every name an edit spec may give them: the
/// key the worker was started with ("default" for the embedded model), the folder's path as
/// given and standardised, and the model's identifier (name@hash). Names are offered to the
/// coordinator in the order first given.
struct ModelCatalogue: Sendable {
    /// Every name of every model.
    let models: [String: DiffusionModel]
    /// The names, each once, in order.
    let names: [String]
    /// Every name of every scorer (its key, its path as given and standardised), and the names.
    let scorers: [String: CLIPScorer]
    let scorerNames: [String]

    /// Loads every directory (large models take a while), keys in sorted order.
    init(directories: [String: URL], scorers scorerDirectories: [String: URL] = [:], logger: Logger) throws {
        var models: [String: DiffusionModel] = [:]
        var names: [String] = []
        for (key, url) in directories.sorted(by: { $0.key < $1.key }) {
            let model = try DiffusionModel(directory: url)
            logger.info("loaded model", metadata: ["key": "\(key)", "model": "\(model.identifier)"])
            for alias in [key, url.path, url.standardizedFileURL.path, model.identifier] where models[alias] == nil {
                models[alias] = model
                names.append(alias)
            }
        }
        (self.models, self.names) = (models, names)
        var scorers: [String: CLIPScorer] = [:]
        var scorerNames: [String] = []
        for (key, url) in scorerDirectories.sorted(by: { $0.key < $1.key }) {
            let scorer = try CLIPScorer(directory: url)
            logger.info("loaded scorer", metadata: ["key": "\(key)", "folder": "\(url.path)"])
            for alias in [key, url.path, url.standardizedFileURL.path] where scorers[alias] == nil {
                scorers[alias] = scorer
                scorerNames.append(alias)
            }
        }
        (self.scorers, self.scorerNames) = (scorers, scorerNames)
    }

    /// What the worker tells the coordinator it serves: each name once per precision
    /// (`CapabilityKey`), so that bf16 edits go only to workers that run bf16.
    /// With each scorer too, for sampled lines.
    func capabilityKeys(precisions: [Precision]) -> [String] {
        precisions.flatMap { precision in
            names.flatMap { name in
                [CapabilityKey.key(model: name, precision: precision)] + scorerNames.map { CapabilityKey.key(model: name, precision: precision, scorer: $0) }
            }
        }
    }
}
