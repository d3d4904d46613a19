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
    /// Loaded CLIP scorers by every key a sampled line may name them with.
    var scorers: [String: CLIPScorer] = [:]
    let lowMemory: Bool
    /// Inversions of the pictures this worker edited, for the edits of them that follow.
    var inversions: InversionCache?

    /// Runs one task; `progress` gets (step, total) during denoising.
    func run(_ work: TaskWork, progress: @escaping (Int, Int) -> Void) throws -> TaskResult {
        switch work {
        case .stageOne(let edits, let pictures): return .stageOne(try stageOne(edits, pictures: pictures, progress: progress))
        case .finish(let work): return .finish(try finish(work))
        case .variant(let work): return .variant(try variant(work, progress: progress))
        }
    }

    func model(_ key: String) throws -> DiffusionModel {
        guard let model = models[key] else {
            throw TaskFailure(reason: "model '\(key)' is not loaded on this worker", retryable: true)
        }
        return model
    }

    /// Each edit in turn, its spec opened (parsed and checked) here; an edit that cannot run
    /// (a bad spec, a picture that did not come with it or does not decode, or one this model
    /// refuses) fails alone. A real-image edit edits the picture that came with the task, never
    /// a file this worker could open by the path the batch named.
    func stageOne(_ edits: [EditEnvelope], pictures: [CarriedPicture], progress: @escaping (Int, Int) -> Void) throws -> [StageOneEdit] {
        var decoded: [String: Result<RGBImage, EditError>] = [:]
        func picture(_ digest: String) -> Result<RGBImage, EditError> {
            if let known = decoded[digest] { return known }
            let result: Result<RGBImage, EditError>
            if let carried = pictures.first(where: { $0.digest == digest }), carried.isIntact {
                do { result = .success(try PictureFile.decode(Data(carried.bytes), name: "picture \(digest.prefix(12))")) } catch {
                    result = .failure(EditError(field: "image", problem: "\(error)", fix: "give a PNG or JPEG file that opens"))
                }
            } else {
                result = .failure(EditError(field: "image", problem: "picture \(digest.prefix(12)) did not come with the task (or arrived damaged)",
                                            fix: "submit the batch again with ptp submit, which sends its pictures"))
            }
            decoded[digest] = result
            return result
        }
        return try edits.map { envelope in
            let model = try model(envelope.model)
            do {
                let spec = try envelope.open()
                let image = try spec.imageSHA256.map { try picture($0).get() }
                let mask = try spec.maskSHA256.map { try picture($0).get() }
                let stage = try PromptToPromptEditor(model: model).runStageOne(spec, picture: image, mask: mask, inversions: inversions,
                                                                                lowMemory: lowMemory, progress: progress)
                let s = stage.settings
                let run = EditRun(model: model.identifier, mode: spec.resolvedMode,
                                  settings: .init(steps: s.steps, guidance: Double(s.guidance), height: s.height, width: s.width,
                                                  scheduler: stage.scheduler, precision: s.precision),
                                  inversion: stage.inversion)
                return StageOneEdit(id: envelope.id, outcome: .ran(run, seconds: stage.seconds, output: TensorPayload(name: "latents", tensor: stage.output)))
            } catch let error as EditError {
                return StageOneEdit(id: envelope.id, outcome: .failed(reason: "\(error)"))
            }
        }
    }

    /// One variant of a sampled line, whole: its spec drawn from the line's (opened here), its
    /// stage 1, every picture finished, the pair scored. Its pictures go back only when they may
    /// be kept (the filter passes them) or the line keeps rejected pictures too.
    func variant(_ work: VariantWork, progress: @escaping (Int, Int) -> Void) throws -> VariantOutcome {
        let model = try model(work.line.model)
        guard let plan = work.line.sampling else { throw TaskFailure(reason: "variant task for a line with no samples", retryable: false) }
        let scorer = try plan.scorer.map { key -> CLIPScorer in
            guard let scorer = scorers[key] else { throw TaskFailure(reason: "scorer '\(key)' is not loaded on this worker", retryable: true) }
            return scorer
        }
        do {
            let (spec, draw) = try work.line.open().variant(work.index)
            let start = Date()
            let result = try PromptToPromptEditor(model: model).run(spec, lowMemory: lowMemory, progress: progress)
            let scores = try scorer.map { try $0.scores(source: result.images[0], edited: result.images[1], sourcePrompt: spec.source, editedPrompt: spec.targets[0]) }
            let s = result.settings
            let run = EditRun(model: model.identifier, mode: spec.resolvedMode,
                              settings: .init(steps: s.steps, guidance: Double(s.guidance), height: s.height, width: s.width,
                                              scheduler: result.scheduler, precision: s.precision))
            let wanted = plan.keepRejected || plan.passes(scores)
            return .ran(ScoredVariant(draw: draw, run: run, seconds: Date().timeIntervalSince(start), scores: scores,
                                      pictures: wanted ? result.images.map { TensorPayload(name: "image", image: $0) } : []))
        } catch let error as EditError {
            return .failed(reason: "\(error)")
        }
    }

    func finish(_ work: FinishWork) throws -> FinishedImage {
        let model = try model(work.spec.model)
        let start = Date()
        let image = try PromptToPromptEditor(model: model).finishImage(work.input.tensor, as: work.spec)
        return FinishedImage(seconds: Date().timeIntervalSince(start), image: TensorPayload(name: "image", image: image))
    }
}
