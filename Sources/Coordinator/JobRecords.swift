import Foundation
import Wire

/// A batch of edits with an output folder.
final class JobRecord {
    let id: String
    let output: URL
    let created: Date
    /// Edit ids in submission order (the manifest's order).
    let editOrder: [String]
    var edits: [String: EditRecord]

    init(id: String, output: URL, created: Date, edits: [EditRecord]) {
        self.id = id
        self.output = output
        self.created = created
        editOrder = edits.map(\.id)
        self.edits = Dictionary(uniqueKeysWithValues: edits.map { ($0.id, $0) })
    }

    var finishedCount: Int { edits.values.filter { $0.state == .finished }.count }
    var failedCount: Int { edits.values.filter { $0.state == .failed }.count }
    var isComplete: Bool { edits.values.allSatisfy { $0.state == .finished || $0.state == .failed } }
}

/// One edit of a job and how far it has come.
final class EditRecord {
    enum State: String { case pending, finishing, finished, failed }

    let job: String
    let id: String
    /// The spec as submitted (JSON object text).
    let spec: String
    let prompts: Int
    /// The capability workers must have: the model key ("default" for the embedded model), with
    /// "@bf16" for bf16 edits (`CapabilityKey`).
    let model: String
    /// Edits with equal keys can share a stage-1 task.
    let packKey: String
    var state: State = .pending
    var error: String?
    /// From the stage-1 result.
    var stageOne: StageOneInfo?
    /// Image index -> the worker and seconds that finished it.
    var images: [Int: (worker: String, seconds: Double)] = [:]
    var finishedAt: Date?

    struct StageOneInfo: Codable {
        var worker: String
        var model: String
        var mode: String
        var seconds: Double
        var steps: Int
        var guidance: Double
        var height: Int
        var width: Int
        var scheduler: String?
        var precision: String?
    }

    init(job: String, id: String, spec: String, prompts: Int, model: String, packKey: String) {
        (self.job, self.id, self.spec, self.prompts, self.model, self.packKey) = (job, id, spec, prompts, model, packKey)
    }

    /// Reads the fields the coordinator schedules by from a spec's JSON; the full validation is
    /// the submitter's and the worker's.
    static func parse(_ object: [String: Any], job: String) throws -> EditRecord {
        guard let id = object["id"] as? String, !id.isEmpty,
              id.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !id.hasPrefix(".") else {
            throw SubmissionError("every edit needs an 'id' usable as a folder name (letters, digits, '-', '_', '.')")
        }
        guard object["source"] is String, let targets = object["targets"] as? [Any], !targets.isEmpty else {
            throw SubmissionError("edit '\(id)': needs 'source' and a non-empty 'targets' list")
        }
        let model = CapabilityKey.key(model: (object["model"] as? String) ?? "default", precision: (object["precision"] as? String) ?? "fp32")
        let key = ["steps", "height", "width", "guidance"].map { "\(object[$0] ?? "-")" }.joined(separator: "/")
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return EditRecord(job: job, id: id, spec: String(decoding: data, as: UTF8.self), prompts: 1 + targets.count,
                          model: model, packKey: model + "|" + key)
    }
}

/// A unit of work for one worker.
final class TaskRecord {
    enum State: String { case queued, leased, done, failed }

    let id: String
    let job: String
    let kind: TaskKind
    /// Stage 1: the edits it runs; finish: the one edit.
    let edits: [String]
    /// Finish: which image.
    let image: Int
    let model: String
    var state: State
    var attempts: Int
    var worker: String?
    var leaseExpiry: Date?
    var lastError: String?
    /// Stage 1: steps done of all its edits (progress).
    var progress: (step: Int, total: Int)?

    init(id: String, job: String, kind: TaskKind, edits: [String], image: Int, model: String, state: State = .queued, attempts: Int = 0) {
        (self.id, self.job, self.kind, self.edits, self.image, self.model, self.state, self.attempts) = (id, job, kind, edits, image, model, state, attempts)
    }
}

/// A refused submission.
struct SubmissionError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
