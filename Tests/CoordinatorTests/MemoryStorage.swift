@testable import Coordinator
import Foundation
import Imaging
import Wire

/// A journal in memory (nothing durable): the broker's tests run on it. Images are only ever
/// added to an edit, as the SQLite journal's rows are.
final class MemoryJournal: JobJournal, @unchecked Sendable {
    private let lock = NSLock()
    private var jobs: [JournalJob] = []
    private var tasks: [JournalTask] = []
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
        }
    }

    func load() throws -> JournalContents {
        lock.withLock { JournalContents(jobs: jobs, tasks: tasks) }
    }
}

/// Results in memory: the same checks as on disk (`ResultStore`'s own), no disk.
final class MemoryResultStore: ResultStore, @unchecked Sendable {
    private let lock = NSLock()
    private var tensors: [String: TensorPayload] = [:]
    private var pictureFolders: [String: [RGBImage]] = [:]
    private var manifestLines: [String: [String]] = [:]
    private var storedFailure: Error?

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
}

/// A copy of `value` changed by `change`.
func with<Value>(_ value: Value, _ change: (inout Value) -> Void) -> Value {
    var copy = value
    change(&copy)
    return copy
}
