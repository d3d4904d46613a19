import EditContract
import Foundation
import Wire

/// What the broker asks of the world, collected as it decides and taken by its shell
/// (`BrokerShell` on the coordinator's event loop; a test drives it directly).
public enum BrokerOutput: Sendable {
    /// Work for a worker, by session (a finish task's once its input is read:
    /// `StorageRequest.readInput`).
    case assign(session: String, taskID: String, work: TaskWork)
    /// A job's progress changed: its watchers want a new report.
    case jobChanged(String)
    /// Durable work, for the storage queue; what comes of it returns through `TaskBroker.stored`.
    case store(StorageRequest)
    /// Something the status board follows.
    case event(BrokerEvent)
}

/// Work on the journal and the result store, carried out in order off the event loop. Each
/// holds values only: the records it came from stay on the loop.
public enum StorageRequest: Sendable {
    /// Makes the output folder, refuses a manifest of jobs this coordinator does not know (when
    /// no earlier job of its writes there), and journals the job: `jobStored` or `jobNotStored`.
    case storeJob(JournalJob, tasks: [JournalTask], foreignManifestCheck: Bool)
    /// A stage-1 result: its outputs saved, then the change journaled: `committed` or `notCommitted`.
    case commitStageOne(taskID: String, job: String, outputs: [String: TensorPayload], change: JournalChange)
    /// A finished image: saved, then the change journaled: `committed` or `notCommitted`.
    case commitImage(taskID: String, job: String, edit: String, index: Int, image: TensorPayload, change: JournalChange)
    /// An edit's pictures written to `folder`, then `change` (it finished) journaled, then its
    /// tensors forgotten: `outputsWritten` or `outputsNotWritten`.
    case writeOutputs(job: String, edit: String, count: Int, folder: URL, change: JournalChange)
    /// A change nothing waits for (attempts, failures); a failure is logged.
    case record(JournalChange)
    /// A folder's manifest rewritten, listing the ended edits of `jobs` (every job writing
    /// there); only the latest of several waiting is written: `manifestWritten` or
    /// `manifestNotWritten`.
    case writeManifest(folder: URL, lines: [ManifestLine], jobs: [String])
    /// A finish task's input read, then its work sent: `inputRead` or `inputNotRead`.
    case readInput(session: String, taskID: String, job: String, edit: String, index: Int, spec: FinishSpec)
    /// A stage-1 task's pictures (its edits' picture and mask) read, then its work (the edits
    /// and the pictures) sent: `inputRead` or `inputNotRead`.
    case readPictures(session: String, taskID: String, edits: [EditEnvelope], digests: [String])
    /// A client's picture kept (written once, by digest): `pictureKept` or `pictureNotKept`.
    case keepPicture(CarriedPicture)
    /// A variant's result: its pictures (when they may be kept) staged, then the change
    /// journaled: `committed` or `notCommitted`.
    case commitVariant(taskID: String, job: String, line: String, index: Int, pictures: [TensorPayload], change: JournalChange)
    /// A sampled line's pictures written, its manifest lines appended, then `change` (it
    /// ended) journaled, then its staged pictures forgotten: `lineWritten` or `lineNotWritten`.
    case writeLine(LineOutputs)
    /// A finished job's dataset files that span its folder (seeds.json, Parquet shards), made
    /// from what the folder holds: `datasetWritten` or `datasetNotWritten`.
    case finishDataset(job: String, folder: URL, layout: OutputLayout)
}

/// What ending a sampled line writes.
public struct LineOutputs: Sendable {
    /// One variant whose pictures are written.
    public struct Pictures: Sendable, Equatable {
        public var record: VariantRecord
        public var kept: Bool
    }

    public var job: String
    public var line: String
    public var folder: URL
    public var layout: OutputLayout
    public var prompts: [String]
    public var instruction: String?
    /// Kept ones best first, then the rejected ones written too.
    public var pictures: [Pictures]
    /// The line's manifest lines, as text.
    public var manifest: [String]
    public var change: JournalChange
}

/// What came of a storage request.
public enum StorageOutcome: Sendable {
    case jobStored(String)
    case jobNotStored(String, reason: String)
    case committed(taskID: String)
    /// `transient`: the disk is full, which is not the task's fault.
    case notCommitted(taskID: String, reason: String, transient: Bool)
    case outputsWritten(job: String, edit: String)
    case outputsNotWritten(job: String, edit: String, reason: String, transient: Bool)
    /// The manifest lists every ended edit of these jobs.
    case manifestWritten(jobs: [String])
    case manifestNotWritten(jobs: [String], reason: String)
    case pictureKept(digest: String, bytes: Int)
    case pictureNotKept(digest: String, reason: String)
    case inputRead(session: String, taskID: String, work: TaskWork)
    case inputNotRead(session: String, taskID: String, reason: String)
    case lineWritten(job: String, line: String)
    case lineNotWritten(job: String, line: String, reason: String, transient: Bool)
    case datasetWritten(job: String)
    case datasetNotWritten(job: String, reason: String)
}

/// What the status board follows, with when it happened.
public enum BrokerEvent: Sendable, Equatable {
    case workerJoined(node: String, at: Date)
    case workerLeft(node: String, host: String, reason: String, at: Date)
    /// A task of the job went to a worker (the first one starts the job's pace).
    case taskAssigned(job: String, at: Date)
    case imageFinished(node: String, at: Date)
    /// An edit's outputs are written.
    case editFinished(job: String, edit: String, at: Date)
    /// A sampled line's outputs are written.
    case lineFinished(job: String, line: String, at: Date)
}
