import EditContract
import Foundation
import Imaging

/// One line of an output folder's manifest.jsonl: an edit that ended, with the spec it ran,
/// where its images are, and which workers made them in how long. The spec is the client's
/// canonical JSON, written as it came (`CompactJSONObject` keeps anything else from breaking
/// the line).
public struct ManifestLine: Sendable, Equatable {
    static let fileName = "manifest.jsonl"

    /// Per stage: the stage-1 value, and one per image for the finish tasks.
    struct Stages<Value: Encodable & Sendable & Equatable>: Encodable, Sendable, Equatable {
        var stage1: Value
        var finish: [Value]
    }

    var id: String
    var job: String
    /// ok or failed.
    var status: String
    /// Canonical JSON.
    var spec: String
    var error: String?
    var images: [String]?
    var grid: String?
    var run: EditRun?
    var workers: Stages<String>?
    var seconds: Stages<Double>?
    var finishedAt: Date?

    /// The line of an edit that ended; nil while it runs.
    init?(_ edit: EditRecord) {
        guard edit.state == .finished || edit.state == .failed else { return nil }
        (id, job, spec, error) = (edit.id, edit.job, edit.envelope.spec, edit.error)
        status = edit.state == .finished ? "ok" : "failed"
        if edit.state == .finished {
            images = EditOutputs.imageNames(count: edit.prompts).map { "\(edit.id)/\($0)" }
            grid = "\(edit.id)/\(EditOutputs.gridName)"
        }
        if let stage = edit.stageOne {
            run = stage.run
            let finished = edit.images.keys.sorted()
            workers = Stages(stage1: stage.worker, finish: finished.map { edit.images[$0]?.worker ?? "" })
            seconds = Stages(stage1: stage.seconds, finish: finished.map { edit.images[$0]?.seconds ?? 0 })
        }
        finishedAt = edit.finishedAt
    }

    /// The line as JSON: keys sorted, slashes unescaped, the spec as it came.
    func text() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var fields: [String: String] = [:]
        func add<Value: Encodable>(_ key: String, _ value: Value?) throws {
            if let value { fields[key] = String(decoding: try encoder.encode(value), as: UTF8.self) }
        }
        try add("id", id)
        try add("job", job)
        try add("status", status)
        // As the client sealed it, unless it is not one compact JSON object (then as a string).
        fields["spec"] = CompactJSONObject.matches(spec) ? spec : String(decoding: try encoder.encode(spec), as: UTF8.self)
        try add("error", error)
        try add("images", images)
        try add("grid", grid)
        if let run {
            try add("model", run.model)
            try add("mode", run.mode)
            try add("settings", run.settings)
            if let inversion = run.inversion {
                try add("inversion_cached", inversion.cached)
                try add("inversion_seconds", inversion.seconds)
            }
        }
        try add("workers", workers)
        try add("seconds", seconds)
        try add("finished_at", finishedAt.map { ISO8601DateFormatter().string(from: $0) })
        let encodedKeys = try fields.keys.sorted().map { (String(decoding: try encoder.encode($0), as: UTF8.self), $0) }
        return "{" + encodedKeys.map { "\($0.0):\(fields[$0.1] ?? "null")" }.joined(separator: ",") + "}"
    }
}
