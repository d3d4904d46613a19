import EditContract
import Foundation

/// A component's `config.json` (or `scheduler_config.json`), with typed look-ups whose errors
/// name the file and the key.
public struct ModelConfig: Sendable {
    let file: URL
    let values: [String: JSONValue]

    init(file: URL) throws {
        self.file = file
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw ModelDirectoryError(path: file.path, problem: "cannot be read", fix: "check that the model directory is complete")
        }
        guard let object = (try? JSONValue.parse(data, allowingNonFiniteNumbers: true))?.objectValue else {
            throw ModelDirectoryError(path: file.path, problem: "is not a JSON object", fix: "restore the file from the original model")
        }
        values = object
    }

    init(values: [String: JSONValue], file: URL) {
        self.values = values
        self.file = file
    }

    func contains(_ key: String) -> Bool { values[key].map { $0 != .null } ?? false }

    private func wrongType(_ key: String, _ expected: String) -> ModelDirectoryError {
        ModelDirectoryError(path: file.path, problem: "key '\(key)' should be \(expected), found \(values[key].map { "\($0)" } ?? "nothing")",
                            fix: "correct '\(key)' in the file")
    }

    func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        guard let value = values[key], value != .null else {
            if let fallback { return fallback }
            throw ModelDirectoryError(path: file.path, problem: "has no '\(key)'", fix: "add '\(key)' (an integer)")
        }
        guard let int = value.intValue else { throw wrongType(key, "an integer") }
        return int
    }

    func double(_ key: String, default fallback: Double? = nil) throws -> Double {
        guard let value = values[key], value != .null else {
            if let fallback { return fallback }
            throw ModelDirectoryError(path: file.path, problem: "has no '\(key)'", fix: "add '\(key)' (a number)")
        }
        guard let double = value.doubleValue else { throw wrongType(key, "a number") }
        return double
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = values[key], value != .null else { return fallback }
        guard let bool = value.boolValue else { throw wrongType(key, "true or false") }
        return bool
    }

    func string(_ key: String, default fallback: String? = nil) throws -> String {
        guard let value = values[key], value != .null else {
            if let fallback { return fallback }
            throw ModelDirectoryError(path: file.path, problem: "has no '\(key)'", fix: "add '\(key)' (a string)")
        }
        guard let string = value.stringValue else { throw wrongType(key, "a string") }
        return string
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = values[key], value != .null else { return nil }
        guard let string = value.stringValue else { throw wrongType(key, "a string") }
        return string
    }

    func optionalInt(_ key: String) throws -> Int? {
        guard let value = values[key], value != .null else { return nil }
        guard let int = value.intValue else { throw wrongType(key, "an integer") }
        return int
    }

    func ints(_ key: String, default fallback: [Int]? = nil) throws -> [Int] {
        guard let value = values[key], value != .null else {
            if let fallback { return fallback }
            throw ModelDirectoryError(path: file.path, problem: "has no '\(key)'", fix: "add '\(key)' (a list of integers)")
        }
        guard let items = value.arrayValue?.compactMap(\.intValue), items.count == value.arrayValue?.count else {
            throw wrongType(key, "a list of integers")
        }
        return items
    }

    func strings(_ key: String, default fallback: [String]? = nil) throws -> [String] {
        guard let value = values[key], value != .null else {
            if let fallback { return fallback }
            throw ModelDirectoryError(path: file.path, problem: "has no '\(key)'", fix: "add '\(key)' (a list of strings)")
        }
        guard let items = value.arrayValue?.compactMap(\.stringValue), items.count == value.arrayValue?.count else {
            throw wrongType(key, "a list of strings")
        }
        return items
    }

    /// An integer or a list of integers (as `attention_head_dim` may be either), as a list of `count`.
    func intOrInts(_ key: String, count: Int, default fallback: Int? = nil) throws -> [Int] {
        if let single = values[key]?.intValue { return Array(repeating: single, count: count) }
        if values[key] == nil || values[key] == .null, let fallback { return Array(repeating: fallback, count: count) }
        let list = try ints(key)
        guard list.count == count else { throw wrongType(key, "one integer or a list of \(count)") }
        return list
    }

    // Sizes: a count of heads, channels, layers or steps of 0 (or less) would divide by zero or
    // allocate nothing where the model needs something; refused by key instead.

    /// A size: an integer of at least 1.
    func size(_ key: String, default fallback: Int? = nil) throws -> Int {
        try checkedSizes(key, [int(key, default: fallback)])[0]
    }

    /// A non-empty list of sizes.
    func sizes(_ key: String, default fallback: [Int]? = nil) throws -> [Int] {
        try checkedSizes(key, ints(key, default: fallback))
    }

    /// One size or a list of `count` sizes.
    func sizeOrSizes(_ key: String, count: Int, default fallback: Int? = nil) throws -> [Int] {
        try checkedSizes(key, intOrInts(key, count: count, default: fallback))
    }

    private func checkedSizes(_ key: String, _ values: [Int]) throws -> [Int] {
        guard !values.isEmpty, values.allSatisfy({ $0 >= 1 }) else {
            throw ModelDirectoryError(path: file.path, problem: "key '\(key)' is \(values), but it counts something the model needs at least one of",
                                      fix: "correct '\(key)' in the file (the original model's value)")
        }
        return values
    }
}
