import Coordinator
import EditContract
import Foundation
import Logging
import Wire

/// A clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    var now = Date(timeIntervalSince1970: 1_800_000_000)
    func advance(_ seconds: TimeInterval) { now += seconds }
}

/// What a worker was handed.
struct Assignment: Equatable {
    let session: String
    let taskID: String
    let kind: TaskKind
}

/// A scheduling core on a journal and result store in a fresh folder, with a manual clock and
/// helpers that play the workers' part of the protocol.
final class SchedulerHarness {
    let folder: URL
    let clock = ManualClock()
    let settings: SchedulerSettings
    private(set) var core: Scheduler
    /// Tasks handed out that the test has not looked at yet.
    private var unread: [Assignment] = []

    /// `packPrompts`: the most prompts one stage-1 task holds (the default's 4).
    init(packPrompts: Int = 4, unservedTimeout: TimeInterval = 300) throws {
        var settings = SchedulerSettings()
        settings.packPrompts = packPrompts
        settings.unservedTimeout = unservedTimeout
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-core-\(UUID().uuidString)")
        self.settings = settings
        core = try Self.makeCore(folder: folder, clock: clock, settings: settings)
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    private static func makeCore(folder: URL, clock: ManualClock, settings: SchedulerSettings) throws -> Scheduler {
        let state = folder.appendingPathComponent("state")
        return try Scheduler(journal: try Journal(directory: state), store: ResultStore(state: state), metrics: CoordinatorMetrics(),
                             logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, settings: settings, now: { clock.now })
    }

    /// A second core on the same journal and store, as after a coordinator restart.
    func restart() throws {
        core = try Self.makeCore(folder: folder, clock: clock, settings: settings)
        try core.restore()
        unread.removeAll()
    }

    var output: URL { folder.appendingPathComponent("out") }

    static func edit(_ id: String, targets: Int = 1, steps: Int? = nil, precision: Precision = .fp32) -> EditSpec {
        var spec = EditSpec(id: id, source: "a red circle", targets: (0..<targets).map { "a red square \($0)" })
        spec.steps = steps
        spec.precision = precision
        return spec
    }

    @discardableResult
    func submit(_ specs: [EditSpec]) throws -> String {
        try core.submit(specs, output: output.path)
    }

    func join(_ session: String, models: Set<String> = ["default"], credit: Int = 1) {
        core.workerJoined(sessionID: session, nodeID: session, host: "test", models: models)
        if credit > 0 { core.credit(session, slots: credit) }
    }

    private func collect() {
        unread += core.takeOutput().compactMap { item in
            guard case .send(let session, .assign(let taskID, let kind, _, _)) = item else { return nil }
            return Assignment(session: session, taskID: taskID, kind: kind)
        }
    }

    /// The tasks handed out since the last look.
    func assignments() -> [Assignment] {
        collect()
        defer { unread.removeAll() }
        return unread
    }

    /// The next task handed to `session` not yet looked at.
    func nextAssignment(for session: String) -> Assignment? {
        collect()
        guard let index = unread.firstIndex(where: { $0.session == session }) else { return nil }
        return unread.remove(at: index)
    }

    /// The specs a stage-1 assignment carries, by id.
    func edits(of taskID: String) -> [EditRecord] {
        guard let task = core.task(taskID), let job = core.jobs[task.job] else { return [] }
        return task.edits.compactMap { job.edits[$0] }
    }

    /// The worker's stage-1 result for every edit of the task (`failing`: edits it could not run).
    func finishStageOne(_ taskID: String, by session: String, failing: Set<String> = [], omitTensorOf missing: String? = nil) throws {
        let edits = edits(of: taskID)
        let ran = edits.filter { !failing.contains($0.id) }
        let result = StageOneResult(edits: ran.map { .init(id: $0.id, model: "m", mode: "replace", seconds: 1, steps: 2, guidance: 7.5, height: 8, width: 8) },
                                    failures: Dictionary(uniqueKeysWithValues: failing.map { ($0, "no such word") }))
        let tensors = ran.filter { $0.id != missing }.map {
            TensorPayload(name: $0.id, shape: [$0.prompts, 4, 1, 1], floats: [Float](repeating: 0.5, count: $0.prompts * 4))
        }
        core.result(session, taskID: taskID, payload: try result.jsonText(), tensors: tensors)
    }

    /// The worker's finished image for a finish task.
    func finishImage(_ taskID: String, by session: String, height: Int = 8) throws {
        let image = TensorPayload(name: "image", elementType: .uint8, shape: [height, 8, 3], bytes: [UInt8](repeating: 200, count: height * 24))
        core.result(session, taskID: taskID, payload: try FinishResult(seconds: 0.5).jsonText(), tensors: [image])
    }

    /// Runs every task handed to `session` to its end, asking for more each time, until none is left.
    func work(_ session: String) throws {
        while let next = nextAssignment(for: session) {
            switch next.kind {
            case .stageOne: try finishStageOne(next.taskID, by: session)
            case .finish: try finishImage(next.taskID, by: session)
            case .noop: core.result(session, taskID: next.taskID, payload: "{}", tensors: [])
            }
            core.credit(session, slots: 1)
        }
    }

    func manifest() -> [String] {
        let text = (try? String(contentsOf: output.appendingPathComponent("manifest.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }
}
