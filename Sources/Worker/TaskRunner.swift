import EditContract
import Engine
import Foundation
import Imaging
import Wire

/// A task the worker could not do, and whether another attempt (elsewhere) could succeed.
struct TaskFailure: Error {
    let reason: String
    let retryable: Bool
}

/// Runs the coordinator's tasks with the Engine, exactly as `ptp edit` would on one machine.
struct TaskRunner: Sendable {
    /// Loaded models by every key a spec may name them with.
    let models: [String: DiffusionModel]
    let lowMemory: Bool

    /// Runs one task; `progress` gets (step, total) during denoising.
    func run(_ work: TaskWork, progress: @escaping (Int, Int) -> Void) throws -> TaskResult {
        switch work {
        case .stageOne(let edits): return .stageOne(try stageOne(edits, progress: progress))
        case .finish(let work): return .finish(try finish(work))
        }
    }

    func model(_ key: String) throws -> DiffusionModel {
        guard let model = models[key] else {
            throw TaskFailure(reason: "model '\(key)' is not loaded on this worker", retryable: true)
        }
        return model
    }

    /// Each edit in turn, its spec opened (parsed and checked) here; an edit that cannot run
    /// (a bad spec, or one this model refuses) fails alone.
    func stageOne(_ edits: [EditEnvelope], progress: @escaping (Int, Int) -> Void) throws -> [StageOneEdit] {
        try edits.map { envelope in
            let model = try model(envelope.model)
            do {
                let spec = try envelope.open()
                let stage = try PromptToPromptEditor(model: model).runStageOne(spec, lowMemory: lowMemory, progress: progress)
                let s = stage.settings
                let run = EditRun(model: model.identifier, mode: spec.resolvedMode,
                                  settings: .init(steps: s.steps, guidance: Double(s.guidance), height: s.height, width: s.width,
                                                  scheduler: stage.scheduler, precision: s.precision))
                return StageOneEdit(id: envelope.id, outcome: .ran(run, seconds: stage.seconds, output: TensorPayload(name: "latents", tensor: stage.output)))
            } catch let error as EditError {
                return StageOneEdit(id: envelope.id, outcome: .failed(reason: "\(error)"))
            }
        }
    }

    func finish(_ work: FinishWork) throws -> FinishedImage {
        let model = try model(work.spec.model)
        let start = Date()
        let image = try PromptToPromptEditor(model: model).finishImage(work.input.tensor, as: work.spec)
        return FinishedImage(seconds: Date().timeIntervalSince(start), image: TensorPayload(name: "image", image: image))
    }
}
