import Foundation
import Imaging
import Logging
import Wire

/// Carries out the broker's storage requests on a journal and a result store, one at a time,
/// and says what came of each (nil where nothing waits for it).
public struct Storage: Sendable {
    public let journal: JobJournal
    public let store: ResultStore
    let logger: Logger

    public init(journal: JobJournal, store: ResultStore, logger: Logger) {
        (self.journal, self.store, self.logger) = (journal, store, logger)
    }

    public func perform(_ request: StorageRequest) -> StorageOutcome? {
        switch request {
        case .storeJob(let job, let tasks, let foreignManifestCheck):
            do {
                let hasManifest: Bool
                do { hasManifest = try store.prepareOutput(job.output) } catch {
                    return .jobNotStored(job.id, reason: "output folder: \(error)")
                }
                if foreignManifestCheck && hasManifest {
                    return .jobNotStored(job.id, reason: "the output folder \(job.output.path) holds a manifest.jsonl of jobs this coordinator does not know; "
                                         + "choose another folder, or move that manifest away first")
                }
                try journal.insert(job, tasks: tasks)
                return .jobStored(job.id)
            } catch {
                return .jobNotStored(job.id, reason: "cannot journal the job: \(error)")
            }
        case .commitStageOne(let taskID, let job, let outputs, let change):
            do {
                for (edit, tensor) in outputs.sorted(by: { $0.key < $1.key }) { try store.save(tensor, job: job, edit: edit, name: "stage1") }
                try journal.apply(change)
                return .committed(taskID: taskID)
            } catch {
                return .notCommitted(taskID: taskID, reason: "\(error)", transient: Self.isTransient(error))
            }
        case .commitImage(let taskID, let job, let edit, let index, let image, let change):
            do {
                try store.save(image, job: job, edit: edit, name: "image-\(index)")
                try journal.apply(change)
                return .committed(taskID: taskID)
            } catch {
                return .notCommitted(taskID: taskID, reason: "\(error)", transient: Self.isTransient(error))
            }
        case .writeOutputs(let job, let edit, let count, let folder, let change):
            do { try store.writePictures(job: job, edit: edit, count: count, to: folder) } catch {
                return .outputsNotWritten(job: job, edit: edit, reason: "\(error)", transient: Self.isTransient(error))
            }
            // Written but not recorded: written again on the retry, which is harmless.
            do { try journal.apply(change) } catch {
                return .outputsNotWritten(job: job, edit: edit, reason: "\(error)", transient: true)
            }
            store.removeTensors(job: job, edit: edit)
            return .outputsWritten(job: job, edit: edit)
        case .record(let change):
            do { try journal.apply(change) } catch {
                logger.error("cannot journal a change", metadata: ["error": "\(error)"])
            }
            return nil
        case .writeManifest(let folder, let lines, let jobs):
            do { try store.writeManifest(lines, to: folder) } catch {
                return .manifestNotWritten(jobs: jobs, reason: "\(error)")
            }
            return .manifestWritten(jobs: jobs)
        case .commitVariant(let taskID, let job, let line, let index, let pictures, let change):
            do {
                for (number, picture) in pictures.enumerated() {
                    try store.save(picture, job: job, edit: line, name: LineOutputs.stagedName(variant: index, picture: number))
                }
                try journal.apply(change)
                return .committed(taskID: taskID)
            } catch {
                return .notCommitted(taskID: taskID, reason: "\(error)", transient: Self.isTransient(error))
            }
        case .writeLine(let outputs):
            return writeLine(outputs)
        case .finishDataset(let job, let folder, let layout):
            do { try store.writeDatasetFiles(in: folder, layout: layout) } catch {
                return .datasetNotWritten(job: job, reason: "\(error)")
            }
            return .datasetWritten(job: job)
        case .readPictures(let session, let taskID, let edits, let digests):
            do {
                let pictures = try digests.map { digest in
                    do { return try store.carriedPicture(digest) } catch { throw StorageError("picture \(digest.prefix(12)): \(error)") }
                }
                return .inputRead(session: session, taskID: taskID, work: .stageOne(edits, pictures: pictures))
            } catch {
                return .inputNotRead(session: session, taskID: taskID, reason: "\(error)")
            }
        case .keepPicture(let picture):
            guard picture.isIntact else {
                return .pictureNotKept(digest: picture.digest, reason: "its bytes are not the ones its SHA-256 names; send it again")
            }
            let data = Data(picture.bytes)
            guard PNGCodec.isPNG(data) || JPEGCodec.isJPEG(data) else {
                return .pictureNotKept(digest: picture.digest, reason: "it is neither PNG nor JPEG; convert it")
            }
            do { try store.keepCarriedPicture(picture) } catch {
                return .pictureNotKept(digest: picture.digest, reason: "\(error)")
            }
            return .pictureKept(digest: picture.digest, bytes: picture.bytes.count)
        case .readInput(let session, let taskID, let job, let edit, let index, let spec):
            do {
                let input = try store.stageOneSlice(job: job, edit: edit, index: index)
                return .inputRead(session: session, taskID: taskID, work: .finish(FinishWork(edit: edit, index: index, spec: spec, input: input)))
            } catch {
                return .inputNotRead(session: session, taskID: taskID, reason: "\(error)")
            }
        }
    }

    /// A line's pictures, then its manifest lines (appended after what the journal last recorded
    /// of that manifest, so an append a crash cut short is replaced), then the journal.
    private func writeLine(_ outputs: LineOutputs) -> StorageOutcome {
        do { try store.writeLine(outputs) } catch {
            return .lineNotWritten(job: outputs.job, line: outputs.line, reason: "\(error)", transient: Self.isTransient(error))
        }
        var change = outputs.change
        do {
            let length = try journal.manifestLength(of: outputs.folder)
            change.manifest = (outputs.folder, try store.appendManifest(outputs.manifest, to: outputs.folder, after: length))
        } catch {
            return .lineNotWritten(job: outputs.job, line: outputs.line, reason: "\(error)", transient: Self.isTransient(error))
        }
        do { try journal.apply(change) } catch {
            return .lineNotWritten(job: outputs.job, line: outputs.line, reason: "\(error)", transient: true)
        }
        store.removeTensors(job: outputs.job, edit: outputs.line)
        return .lineWritten(job: outputs.job, line: outputs.line)
    }

    /// A full disk: space may come back, and it is not the task's fault.
    static func isTransient(_ error: Error) -> Bool {
        (error as? OutputFileError)?.isTransient ?? false
    }
}

/// Where the shell sends storage requests.
protocol StorageExecutor: AnyObject {
    /// Carries out `request` after every one sent before it; `outcome` gets what came of it.
    func submit(_ request: StorageRequest, outcome: @escaping @Sendable (StorageOutcome) -> Void)
    /// Runs `done` once every request sent so far is carried out.
    func whenIdle(_ done: @escaping @Sendable () -> Void)
}

/// Storage on the caller's thread, at once (tests on NIO's EmbeddedChannel).
final class InlineStorage: StorageExecutor {
    let storage: Storage
    init(_ storage: Storage) { self.storage = storage }

    func submit(_ request: StorageRequest, outcome: @escaping @Sendable (StorageOutcome) -> Void) {
        if let result = storage.perform(request) { outcome(result) }
    }

    func whenIdle(_ done: @escaping @Sendable () -> Void) { done() }
}
