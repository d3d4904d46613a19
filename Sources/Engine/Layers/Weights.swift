/// Named access to a model's weights under a key prefix, with every tensor checked against the
/// shape the configuration implies (so a config/weights mismatch fails at load, naming the tensor).
struct Weights: Sendable {
    let file: SafeTensorsFile
    let prefix: String

    init(_ file: SafeTensorsFile, prefix: String = "") {
        self.file = file
        self.prefix = prefix
    }

    /// The weights under `name.` (e.g. `down_blocks.0` -> `down_blocks.0.resnets.1.conv1.weight`).
    func scoped(_ name: String) -> Weights {
        Weights(file, prefix: prefix + name + ".")
    }

    /// The tensor `name`, which must have `shape`.
    func callAsFunction(_ name: String, shape: [Int]) throws -> Tensor {
        try file.tensor(prefix + name, shape: shape)
    }

    /// The float entry `name`, which must have `shape`, to be read when first used.
    func source(_ name: String, shape: [Int]) throws -> WeightSource {
        try WeightSource(file: file, name: prefix + name, shape: shape)
    }

    /// The tensor `name` if present (optional biases), which must then have `shape`.
    func optional(_ name: String, shape: [Int]) throws -> Tensor? {
        contains(name) ? try self(name, shape: shape) : nil
    }

    func contains(_ name: String) -> Bool { file.entries[prefix + name] != nil }

    /// The stored shape of `name`, if present.
    func shape(of name: String) -> [Int]? { file.entries[prefix + name]?.shape }
}
