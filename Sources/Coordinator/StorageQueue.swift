import Dispatch
import Foundation
import Wire

/// Storage on a thread of its own, in order: a slow or full disk holds up no connection, and
/// the broker hears each outcome on its event loop. Manifest rewrites waiting for the same
/// folder collapse into the latest (each holds every line), so a disk slower than the job
/// does not grow a backlog of them.
final class StorageQueue: StorageExecutor, @unchecked Sendable {
    private let storage: Storage
    private let queue = DispatchQueue(label: "ptp.coordinator.storage")
    private let lock = NSLock()
    /// The latest manifest waiting for each folder, and what to tell of it.
    private var manifests: [String: (request: StorageRequest, outcome: @Sendable (StorageOutcome) -> Void)] = [:]

    init(_ storage: Storage) { self.storage = storage }

    func submit(_ request: StorageRequest, outcome: @escaping @Sendable (StorageOutcome) -> Void) {
        if case .writeManifest(let folder, _, _) = request {
            let path = folder.path
            let queued = lock.withLock {
                defer { manifests[path] = (request, outcome) }
                return manifests[path] != nil
            }
            if queued { return }
            queue.async {
                guard let latest = self.lock.withLock({ self.manifests.removeValue(forKey: path) }) else { return }
                if let result = self.storage.perform(latest.request) { latest.outcome(result) }
            }
            return
        }
        queue.async {
            if let result = self.storage.perform(request) { outcome(result) }
        }
    }

    func whenIdle(_ done: @escaping @Sendable () -> Void) {
        queue.async(execute: done)
    }
}
