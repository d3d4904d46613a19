import EditContract
import Foundation
import Imaging

/// One line of a job's manifest.jsonl: an edit that ended, with the spec it ran, where its
/// images are, and which workers made them in how long.
struct ManifestLine: Encodable {
    struct Settings: Encodable {
        var steps: Int
        var guidance: Double
        var height: Int
        var width: Int
        var scheduler: String?
        var precision: String?
    }

    /// Per stage: the stage-1 value, and one per image for the finish tasks.
    struct Stages<Value: Encodable>: Encodable {
        var stage1: Value
        var finish: [Value]
    }

    var id: String
    var job: String
    /// ok or failed.
    var status: String
    var spec: EditSpec
    var error: String?
    var images: [String]?
    var grid: String?
    var model: String?
    var mode: String?
    var settings: Settings?
    var workers: Stages<String>?
    var seconds: Stages<Double>?
    var finishedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, job, status, spec, error, images, grid, model, mode, settings, workers, seconds
        case finishedAt = "finished_at"
    }

    /// The line of an edit that ended; nil while it runs.
    init?(_ edit: EditRecord, in job: JobRecord) {
        guard edit.state == .finished || edit.state == .failed else { return nil }
        (id, self.job, spec, error) = (edit.id, job.id, edit.spec, edit.error)
        status = edit.state == .finished ? "ok" : "failed"
        if edit.state == .finished {
            images = EditOutputs.imageNames(count: edit.prompts).map { "\(edit.id)/\($0)" }
            grid = "\(edit.id)/\(EditOutputs.gridName)"
        }
        if let stage = edit.stageOne {
            model = stage.model
            mode = stage.mode
            settings = Settings(steps: stage.steps, guidance: stage.guidance, height: stage.height, width: stage.width,
                                scheduler: stage.scheduler, precision: stage.precision)
            let finished = edit.images.keys.sorted()
            workers = Stages(stage1: stage.worker, finish: finished.map { edit.images[$0]?.worker ?? "" })
            seconds = Stages(stage1: stage.seconds, finish: finished.map { edit.images[$0]?.seconds ?? 0 })
        }
        finishedAt = edit.finishedAt.map { ISO8601DateFormatter().string(from: $0) }
    }
}
