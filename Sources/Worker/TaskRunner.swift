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
    func run(_ work: TaskWork, progress: @escaping (Int, Int) -> Void) throws -> (String, [TensorPayload]) {
        switch work {
        case .stageOne(let payload): return try stageOne(payload, progress: progress)
        case .finish(let payload, let input): return try finish(payload, input: input)
        case .noop: return ("{}", [])
        }
    }

    func model(for spec: EditSpec) throws -> DiffusionModel {
        let key = spec.model ?? "default"
        guard let model = models[key] else {
            throw TaskFailure(reason: "model '\(key)' is not loaded on this worker", retryable: true)
        }
        return model
    }

    /// Each edit in turn; an edit that cannot run (a validation error) fails alone.
    func stageOne(_ payload: StageOnePayload, progress: @escaping (Int, Int) -> Void) throws -> (String, [TensorPayload]) {
        var runs: [StageOneResult.Edit] = []
        var failures: [String: String] = [:]
        var tensors: [TensorPayload] = []
        for spec in payload.edits {
            let model = try model(for: spec)
            do {
                let stage = try PromptToPromptEditor(model: model).runStageOne(spec, lowMemory: lowMemory, progress: progress)
                tensors.append(TensorPayload(name: spec.id, tensor: stage.output))
                let s = stage.settings
                runs.append(.init(id: spec.id, model: model.identifier, mode: spec.resolvedMode.rawValue, seconds: stage.seconds,
                                  steps: s.steps, guidance: Double(s.guidance), height: s.height, width: s.width,
                                  scheduler: stage.scheduler, precision: s.precision.rawValue))
            } catch let error as EditError {
                failures[spec.id] = "\(error)"
            } catch let error as SamplingError {
                failures[spec.id] = "\(error)"
            } catch let error as PromptTooLongError {
                failures[spec.id] = "\(error)"
            }
        }
        return (try StageOneResult(edits: runs, failures: failures).jsonText(), tensors)
    }

    func finish(_ payload: FinishPayload, input: TensorPayload) throws -> (String, [TensorPayload]) {
        let spec = payload.spec
        let model = try model(for: spec)
        guard payload.index >= 0 && payload.index < spec.prompts.count else {
            throw TaskFailure(reason: "finish task for image \(payload.index) of \(spec.prompts.count)", retryable: false)
        }
        let start = Date()
        let image = try PromptToPromptEditor(model: model).finishImage(input.tensor, index: payload.index, spec: spec)
        return (try FinishResult(seconds: Date().timeIntervalSince(start)).jsonText(), [TensorPayload(name: "image", image: image)])
    }
}

