/// Named access to a model's weights under a key prefix, with every tensor checked against the
/// shape the configuration implies (so a config/weights mismatch fails at load, naming the tensor).
/// LoRA updates (`LoRAUpdates`) of the component are added to the weights they name as those
/// are read, so a fused model costs no more memory than the plain one.
struct Weights: Sendable {
    let file: SafeTensorsFile
    let prefix: String
    /// Updates by full weight name (empty for none).
    let updates: [String: [LoRADelta]]

    init(_ file: SafeTensorsFile, prefix: String = "", updates: [String: [LoRADelta]] = [:]) {
        self.file = file
        self.prefix = prefix
        self.updates = updates
    }

    /// The weights under `name.` (e.g. `down_blocks.0` -> `down_blocks.0.resnets.1.conv1.weight`).
    func scoped(_ name: String) -> Weights {
        Weights(file, prefix: prefix + name + ".", updates: updates)
    }

    /// The tensor `name`, which must have `shape`.
    func callAsFunction(_ name: String, shape: [Int]) throws -> Tensor {
        let tensor = try file.tensor(prefix + name, shape: shape)
        guard let deltas = updates[prefix + name] else { return tensor }
        return deltas.reduce(tensor) { $1.applied(to: $0) }
    }

    /// The float entry `name`, which must have `shape`, to be read when first used.
    func source(_ name: String, shape: [Int]) throws -> WeightSource {
        let source = try WeightSource(file: file, name: prefix + name, shape: shape)
        guard let deltas = updates[prefix + name] else { return source }
        return source.updated(by: deltas)
    }

    /// The tensor `name` if present (optional biases), which must then have `shape`.
    func optional(_ name: String, shape: [Int]) throws -> Tensor? {
        contains(name) ? try self(name, shape: shape) : nil
    }

    func contains(_ name: String) -> Bool { file.entries[prefix + name] != nil }

    /// The stored shape of `name`, if present.
    func shape(of name: String) -> [Int]? { file.entries[prefix + name]?.shape }
}
