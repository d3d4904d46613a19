import Dispatch
import Foundation
import Wire

/// Storage on threads of its own, so a slow or full disk holds up no connection; the broker
/// hears each outcome on its event loop. Three lanes, each in order: the state lane (jobs, result
/// commits, journal changes, finish tasks' inputs, all in the state folder), the output lane
/// (pictures and manifests, in the output folders, often on other and slower storage), and the
/// carried-picture lane (clients' pictures kept and read back, tens of megabytes each, hashed),
/// so that neither a slow output disk nor a catalogue being uploaded delays a job's acceptance
/// or a result's commit. Nothing needs the lanes' order against each other: a request that
/// depends on another is only made once that one's outcome is in (pictures after their images'
/// commits, a finish task's input after its stage-1 commit, a job naming a picture after the
/// picture is kept). Manifest rewrites waiting for one folder collapse into the latest (each
/// holds every line), so a disk slower than the job grows no backlog of them.
final class StorageQueue: StorageExecutor, @unchecked Sendable {
    private let storage: Storage
    private let state = DispatchQueue(label: "ptp.coordinator.storage.state")
    private let outputs = DispatchQueue(label: "ptp.coordinator.storage.outputs")
    private let pictures = DispatchQueue(label: "ptp.coordinator.storage.pictures")
    private let lock = NSLock()
    /// The latest manifest waiting for each folder, and what to tell of it.
    private var manifests: [String: (request: StorageRequest, outcome: @Sendable (StorageOutcome) -> Void)] = [:]

    init(_ storage: Storage) { self.storage = storage }

    func submit(_ request: StorageRequest, outcome: @escaping @Sendable (StorageOutcome) -> Void) {
        switch request {
        case .writeManifest(let folder, _, _):
            let path = folder.path
            let queued = lock.withLock {
                defer { manifests[path] = (request, outcome) }
                return manifests[path] != nil
            }
            if queued { return }
            outputs.async {
                guard let latest = self.lock.withLock({ self.manifests.removeValue(forKey: path) }) else { return }
                if let result = self.storage.perform(latest.request) { latest.outcome(result) }
            }
        case .writeOutputs, .writeLine, .finishDataset:
            outputs.async { if let result = self.storage.perform(request) { outcome(result) } }
        case .readPictures, .keepPicture:
            pictures.async { if let result = self.storage.perform(request) { outcome(result) } }
        case .storeJob, .commitStageOne, .commitImage, .commitVariant, .record, .readInput:
            state.async { if let result = self.storage.perform(request) { outcome(result) } }
        }
    }

    func whenIdle(_ done: @escaping @Sendable () -> Void) {
        let group = DispatchGroup()
        for lane in [state, outputs, pictures] {
            group.enter()
            lane.async { group.leave() }
        }
        group.notify(queue: .global(), execute: done)
    }
}
