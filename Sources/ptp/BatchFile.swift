import EditContract
import Foundation
import Imaging
import Wire

/// What a batch's lines take from `ptp submit`'s options when they leave it out.
struct LineDefaults {
    var samples: Int?
    var keep: Int?
    var recipe: String?
    var scorer: String?
    var model: String?
    var steps: Int?
    var superResolution: Bool?
    /// A `filter` object, as a line writes it.
    var filter: JSONValue?

    /// The line's JSON object with each default added where its key is absent.
    func apply(to object: [String: JSONValue]) -> [String: JSONValue] {
        var object = object
        let values: [(EditSpec.Key, JSONValue?)] = [(.samples, samples.map { .int($0) }), (.keep, keep.map { .int($0) }),
                                                    (.recipe, recipe.map { .string($0) }), (.scorer, scorer.map { .string($0) }),
                                                    (.model, model.map { .string($0) }), (.steps, steps.map { .int($0) }),
                                                    (.superResolution, superResolution.map { .bool($0) }), (.filter, filter)]
        for (key, value) in values where object[key.rawValue] == nil { object[key.rawValue] = value }
        return object
    }
}

/// A batch file read for `ptp submit`: every line checked as an edit spec (errors name the file,
/// the line and the field) and sealed for the cluster.
enum BatchFile {
    /// JSON Lines of edit specs (blank lines and # comments skipped). Each picture a line names
    /// (relative to the batch file's folder, or absolute) is read and decoded here, so that a bad
    /// one is refused by its line before anything is sent, and named by its SHA-256; the batch's
    /// pictures are returned by digest, each once however many lines name it.
    static func edits(file: String, defaults: LineDefaults) throws -> (edits: [EditEnvelope], pictures: [String: URL]) {
        var ids = Set<String>()
        var pictures: [String: URL] = [:]
        var digests: [String: String] = [:]
        let folder = URL(fileURLWithPath: file).deletingLastPathComponent()
        // A picture's absolute path and digest, read and checked once however many lines name it.
        func carry(_ path: String, field: String) throws -> (path: String, digest: String) {
            let url = (path.hasPrefix("/") ? URL(fileURLWithPath: path) : folder.appendingPathComponent(path)).standardizedFileURL
            if let digest = digests[url.path] { return (url.path, digest) }
            let bytes: Data
            do {
                bytes = try PictureFile.bytes(of: url)
                _ = try PictureFile.decode(bytes, name: url.path)
            } catch let error as PictureError {
                throw EditError(field: field, problem: "\(error.file) \(error.problem)", fix: error.fix)
            }
            let digest = CarriedPicture.digest(of: bytes)
            (digests[url.path], pictures[digest]) = (digest, url)
            return (url.path, digest)
        }
        let edits = try lines(of: file).map { number, line in
            try sealed(file: file, number: number, line: line) { object in
                var spec = try EditSpec(json: .object(defaults.apply(to: object)))
                guard ids.insert(spec.id).inserted else { throw EditError(field: "id", problem: "'\(spec.id)' is used twice", fix: "give every edit its own id") }
                if let image = spec.image { (spec.image, spec.imageSHA256) = try carry(image, field: "image") }
                if let mask = spec.mask { (spec.mask, spec.maskSHA256) = try carry(mask, field: "mask") }
                return spec
            }
        }
        return (edits, pictures)
    }

    /// The InstructPix2Pix recipe's caption file as it is: one {"input", "edit", "output"} a
    /// line (other keys ignored), each a sampled line named by its position as the recipe
    /// names its folders (0000000, 0000001...), with seed `seed` + position.
    static func captions(file: String, defaults: LineDefaults, seed: UInt64) throws -> [EditEnvelope] {
        try lines(of: file).enumerated().map { position, item in
            try sealed(file: file, number: item.number, line: item.line) { caption in
                var object: [String: JSONValue] = ["id": .string(String(format: "%07d", position)), "seed": .int(Int(seed) + position)]
                for (key, field) in [("input", EditSpec.Key.source), ("output", .targets), ("edit", .instruction)] {
                    guard let value = caption[key] else {
                        if key == "edit" { continue }
                        throw EditError(field: key, problem: "is missing", fix: "give each caption line \"input\", \"edit\" and \"output\"")
                    }
                    guard let text = value.stringValue else { throw EditError(field: key, problem: "is not a string", fix: "quote it") }
                    object[field.rawValue] = field == .targets ? .array([.string(text)]) : .string(text)
                }
                return try EditSpec(json: .object(defaults.apply(to: object)))
            }
        }
    }

    /// The non-blank, non-comment lines with their 0-based line numbers.
    private static func lines(of file: String) throws -> [(number: Int, line: Substring)] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CommandError("cannot read \(file)") }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { number, line -> (Int, Substring)? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty || trimmed.hasPrefix("#") ? nil : (number, line)
        }
        guard !lines.isEmpty else { throw CommandError("\(file) holds no lines") }
        return lines
    }

    /// One line parsed as a JSON object, made a spec by `make`, sealed; errors name the place.
    private static func sealed(file: String, number: Int, line: Substring, _ make: ([String: JSONValue]) throws -> EditSpec) throws -> EditEnvelope {
        do {
            let parsed = try StrictJSON.parse(String(line))
            guard let object = parsed.objectValue else { throw EditError(field: "line", problem: "is not a JSON object", fix: "write one object a line") }
            return try EditEnvelope(try make(object))
        } catch let error as EditError {
            throw CommandError("\(file):\(number + 1): \(error)")
        } catch let error as StrictJSON.SyntaxError {
            let column = error.column + line.prefix { $0 == " " || $0 == "\t" }.count
            throw CommandError("\(file):\(number + 1):\(column): not JSON: \(error.problem)")
        }
    }
}
