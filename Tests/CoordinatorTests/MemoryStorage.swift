@testable import Coordinator
import EditContract
import Foundation
import Imaging
import Wire

/// A journal in memory (nothing durable): the broker's tests run on it. Images are only ever
/// added to an edit, as the SQLite journal's rows are.
final class MemoryJournal: JobJournal, @unchecked Sendable {
    private let lock = NSLock()
    private var jobs: [JournalJob] = []
    private var tasks: [JournalTask] = []
    /// Variant results by job, line and index (the first one kept, as in SQLite).
    private var variants: [String: [Int: VariantRecord]] = [:]
    private var manifestLengths: [String: Int] = [:]
    private var storedFailure: Error?

    /// Calls fail with this while set (a broken disk).
    var failure: Error? {
        get { lock.withLock { storedFailure } }
        set { lock.withLock { storedFailure = newValue } }
    }

    func nextJobNumber() throws -> Int {
        lock.withLock { (jobs.map(\.number).max() ?? 0) + 1 }
    }

    func insert(_ job: JournalJob, tasks: [JournalTask]) throws {
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            jobs.append(job)
            for task in tasks where !self.tasks.contains(where: { $0.id == task.id }) { self.tasks.append(task) }
        }
    }

    func apply(_ change: JournalChange) throws {
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            for task in change.tasks {
                if let index = tasks.firstIndex(where: { $0.id == task.id }) {
                    (tasks[index].state, tasks[index].attempts, tasks[index].error) = (task.state, task.attempts, task.error)
                } else {
                    tasks.append(task)
                }
            }
            for edit in change.edits {
                guard let job = jobs.firstIndex(where: { $0.id == edit.job }),
                      let index = jobs[job].edits.firstIndex(where: { $0.id == edit.id }) else { continue }
                let images = jobs[job].edits[index].images.merging(edit.images) { _, new in new }
                jobs[job].edits[index] = edit
                jobs[job].edits[index].images = images
            }
            for variant in change.variants where variants[variant.job + "\u{0}" + variant.line, default: [:]][variant.record.index] == nil {
                variants[variant.job + "\u{0}" + variant.line, default: [:]][variant.record.index] = variant.record
            }
            for line in change.lines {
                guard let job = jobs.firstIndex(where: { $0.id == line.job }),
                      let index = jobs[job].lines.firstIndex(where: { $0.id == line.id }) else { continue }
                (jobs[job].lines[index].state, jobs[job].lines[index].error) = (line.state, line.error)
                (jobs[job].lines[index].finishedAt, jobs[job].lines[index].tally) = (line.finishedAt, line.tally)
            }
            if let (folder, length) = change.manifest { manifestLengths[folder.path] = length }
        }
    }

    func load() throws -> JournalContents {
        lock.withLock {
            let loaded = jobs.map { job in
                with(job) { job in
                    for index in job.lines.indices where job.lines[index].state != .finished && job.lines[index].state != .failed {
                        let records = variants[job.id + "\u{0}" + job.lines[index].id] ?? [:]
                        job.lines[index].variants = records.keys.sorted().compactMap { records[$0] }
                    }
                }
            }
            return JournalContents(jobs: loaded, tasks: tasks)
        }
    }

    func manifestLength(of folder: URL) throws -> Int {
        lock.withLock { manifestLengths[folder.path] ?? 0 }
    }

    /// The variant results journaled for a line.
    func variants(job: String, line: String) -> [Int: VariantRecord] {
        lock.withLock { variants[job + "\u{0}" + line] ?? [:] }
    }
}

/// Results in memory: the same checks as on disk (`ResultStore`'s own), no disk.
final class MemoryResultStore: ResultStore, @unchecked Sendable {
    private let lock = NSLock()
    private var tensors: [String: TensorPayload] = [:]
    private var pictureFolders: [String: [RGBImage]] = [:]
    private var manifestLines: [String: [String]] = [:]
    private var storedFailure: Error?
    private var carried: [String: CarriedPicture] = [:]

    /// Writes of pictures and manifests fail with this while set (a full or broken disk).
    var outputFailure: Error? {
        get { lock.withLock { storedFailure } }
        set { lock.withLock { storedFailure = newValue } }
    }

    /// Pictures written, by edit folder path.
    var writtenPictures: [String: [RGBImage]] { lock.withLock { pictureFolders } }
    /// Manifests written, by output folder path.
    var writtenManifests: [String: [String]] { lock.withLock { manifestLines } }
    /// How many tensors are kept (none once every edit is written).
    var tensorCount: Int { lock.withLock { tensors.count } }

    private func key(_ job: String, _ edit: String, _ name: String) -> String { [job, edit, name].joined(separator: "\u{0}") }

    func prepareOutput(_ folder: URL) throws -> Bool {
        lock.withLock { manifestLines[folder.path] != nil }
    }

    func save(_ tensor: TensorPayload, job: String, edit: String, name: String) throws {
        lock.withLock { tensors[key(job, edit, name)] = tensor }
    }

    func load(job: String, edit: String, name: String) throws -> TensorPayload {
        guard let tensor = lock.withLock({ tensors[key(job, edit, name)] }) else { throw StorageError("no \(name) of \(edit) of \(job) is stored") }
        return tensor
    }

    func writePictures(job: String, edit: String, count: Int, to folder: URL) throws {
        let images = try pictures(job: job, edit: edit, count: count)
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            pictureFolders[folder.path] = images
        }
    }

    func keepCarriedPicture(_ picture: CarriedPicture) throws {
        lock.withLock { carried[picture.digest] = picture }
    }

    func carriedPicture(_ digest: String) throws -> CarriedPicture {
        guard let picture = lock.withLock({ carried[digest] }) else { throw StorageError("no picture \(digest.prefix(12)) is kept") }
        return picture
    }

    func carriedPictures() throws -> [String: Int] {
        lock.withLock { carried.mapValues(\.bytes.count) }
    }

    func writeManifest(_ lines: [ManifestLine], to folder: URL) throws {
        let texts = try lines.map { try $0.text() }
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            manifestLines[folder.path] = texts
        }
    }

    func removeTensors(job: String, edit: String) {
        let prefix = [job, edit, ""].joined(separator: "\u{0}")
        lock.withLock { tensors = tensors.filter { !$0.key.hasPrefix(prefix) } }
    }

    func writeLine(_ outputs: LineOutputs) throws {
        var written: [String: [RGBImage]] = [:]
        for item in outputs.pictures {
            let pictures = try outputs.prompts.indices.map { index -> RGBImage in
                let payload = try load(job: outputs.job, edit: outputs.line, name: LineOutputs.stagedName(variant: item.record.index, picture: index))
                return RGBImage(width: payload.shape[1], height: payload.shape[0], pixels: payload.bytes)
            }
            written[outputs.folder.appendingPathComponent(outputs.line).appendingPathComponent("\(item.record.seed)\(item.kept ? "" : "-rejected")").path] = pictures
        }
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            pictureFolders.merge(written) { _, new in new }
        }
    }

    /// Appends after cutting back to `length` lines' worth (lines stand for bytes here).
    func appendManifest(_ lines: [String], to folder: URL, after length: Int) throws -> Int {
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            let kept = Array((manifestLines[folder.path] ?? []).prefix(length))
            manifestLines[folder.path] = kept + lines
            return kept.count + lines.count
        }
    }

    func writeDatasetFiles(in folder: URL, layout: OutputLayout) throws {
        try lock.withLock {
            if let storedFailure { throw storedFailure }
            datasets.insert(folder.path)
        }
    }

    private var datasets: Set<String> = []
    /// Folders whose dataset files were written.
    var datasetFolders: Set<String> { lock.withLock { datasets } }
}

/// A copy of `value` changed by `change`.
func with<Value>(_ value: Value, _ change: (inout Value) -> Void) -> Value {
    var copy = value
    change(&copy)
    return copy
}
