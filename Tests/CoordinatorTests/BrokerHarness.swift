@testable import Coordinator
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

/// A broker whose storage runs at once, in memory (or, `durable`, in SQLite and files in a fresh
/// folder), with a manual clock, a status board fed by its events, and helpers that play the
/// workers' part of the protocol. Storage requests can be held back to look at the broker
/// while they are in flight.
final class BrokerHarness {
    let folder: URL
    let clock = ManualClock()
    let settings: BrokerSettings
    let storage: Storage
    let memoryJournal: MemoryJournal?
    let memoryStore: MemoryResultStore?
    private(set) var broker: TaskBroker
    private(set) var board = StatusBoard()
    /// While set, storage requests wait in `held` instead of being carried out (with
    /// `holdingManifests`, only manifest writes do).
    var holding = false
    var holdingManifests = false
    private(set) var held: [StorageRequest] = []
    /// Every storage request made, in order.
    private(set) var requests: [StorageRequest] = []
    /// Jobs whose watchers were told of a change.
    private(set) var changed: [String] = []
    /// Jobs storage refused to take, with why.
    private(set) var refusals: [String: String] = [:]
    /// Tasks handed out that the test has not looked at yet, with their work.
    private var unread: [(Assignment, TaskWork)] = []

    /// `packPrompts`: the most prompts one stage-1 task holds (the default's 4).
    init(packPrompts: Int = 4, unservedTimeout: TimeInterval = 300, maximumAttempts: Int = 3, commitsInFlight: Int = 64,
         durable: Bool = false) throws {
        var settings = BrokerSettings()
        settings.packPrompts = packPrompts
        settings.maximumCommitsInFlight = commitsInFlight
        settings.unservedTimeout = unservedTimeout
        settings.maximumAttempts = maximumAttempts
        self.settings = settings
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-broker-\(UUID().uuidString)")
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        if durable {
            let state = folder.appendingPathComponent("state")
            storage = Storage(journal: try SQLiteJournal(directory: state), store: FileResultStore(state: state), logger: logger)
            (memoryJournal, memoryStore) = (nil, nil)
        } else {
            let (journal, store) = (MemoryJournal(), MemoryResultStore())
            storage = Storage(journal: journal, store: store, logger: logger)
            (memoryJournal, memoryStore) = (journal, store)
        }
        broker = TaskBroker(nextJobNumber: try storage.journal.nextJobNumber(), metrics: CoordinatorMetrics(), logger: logger,
                            settings: settings, now: { [clock] in clock.now })
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    /// A second broker on the same journal and store, as after a coordinator restart.
    func restart() throws {
        let contents = try storage.journal.load()
        broker = TaskBroker(nextJobNumber: try storage.journal.nextJobNumber(), metrics: CoordinatorMetrics(),
                            logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, settings: settings, now: { [clock] in clock.now })
        board = StatusBoard()
        unread.removeAll()
        held.removeAll()
        broker.restore(contents)
        drive()
    }

    var output: URL { folder.appendingPathComponent("out") }

    static func edit(_ id: String, targets: Int = 1, steps: Int? = nil, precision: Precision = .fp32) -> EditEnvelope {
        var spec = EditSpec(id: id, source: "a red circle", targets: (0..<targets).map { "a red square \($0)" })
        spec.steps = steps
        spec.precision = precision
        return try! EditEnvelope(spec)
    }

    /// Carries out what the broker decided, feeding storage outcomes back, until it decides
    /// nothing more.
    func drive() {
        while true {
            let decided = broker.takeOutput()
            guard !decided.isEmpty else { return }
            for item in decided {
                switch item {
                case .assign(let session, let taskID, let work):
                    unread.append((Assignment(session: session, taskID: taskID, kind: work.kind), work))
                case .jobChanged(let job):
                    changed.append(job)
                case .event(let event):
                    board.note(event, broker: broker)
                case .store(let request):
                    requests.append(request)
                    let isManifest = if case .writeManifest = request { true } else { false }
                    if holding || (holdingManifests && isManifest) { held.append(request) } else { perform(request) }
                }
            }
        }
    }

    private func perform(_ request: StorageRequest) {
        guard let outcome = storage.perform(request) else { return }
        if case .jobNotStored(let job, let reason) = outcome { refusals[job] = reason }
        broker.stored(outcome)
    }

    /// Carries out the held storage requests, in order.
    func release() {
        (holding, holdingManifests) = (false, false)
        let requests = held
        held.removeAll()
        for request in requests { perform(request) }
        drive()
    }

    @discardableResult
    func submit(_ edits: [EditEnvelope], output: URL? = nil, layout: OutputLayout = .ptp) throws -> String {
        let job = try broker.submit(edits, output: (output ?? self.output).path, layout: layout)
        drive()
        return job
    }

    /// A sampled line of `samples` variants, scored by "default", kept by `keep`.
    static func line(_ id: String, samples: Int, keep: Int? = nil, filter: ScoreFilter = ScoreFilter(), keepRejected: Bool = false,
                     scorer: String? = SamplingPlan.defaultScorer, seed: UInt64 = 1) -> EditEnvelope {
        var spec = EditSpec(id: id, source: "a red circle", targets: ["a red square"])
        spec.seed = seed
        spec.sampling = SamplingPlan(samples: samples, keep: keep, filter: filter, keepRejected: keepRejected, scorer: scorer)
        return try! EditEnvelope(spec)
    }

    /// The capability key sampled lines made by `line` need.
    static let lineCapability = CapabilityKey.key(model: "default", precision: .fp32, scorer: SamplingPlan.defaultScorer)

    /// A worker's result for a variant task, as `TaskRunner` makes it: the draw from the line,
    /// `direction` (else one from the seed) as its directional score, pictures when the filter
    /// passes it or the line keeps rejected ones.
    func finishVariant(_ assignment: (Assignment, TaskWork), direction: Double? = nil, text: Double = 0.3, image: Double = 0.8) {
        guard case .variant(let work) = assignment.1, let plan = work.line.sampling else { return }
        let draw = VariantDraw(lineSeed: work.line.seed, index: work.index, vary: VariedValues())
        let scores = plan.scorer == nil ? nil : PairScores(text0: text, text1: text, direction: direction ?? Self.direction(of: draw.seed), image: image)
        let run = EditRun(model: "m", mode: .replace, settings: .init(steps: 2, guidance: 7.5, height: 8, width: 8, scheduler: nil, precision: .fp32))
        let wanted = plan.keepRejected || plan.passes(scores)
        let picture = TensorPayload(name: "image", elementType: .uint8, shape: [8, 8, 3], bytes: [UInt8](repeating: UInt8(work.index % 256), count: 192))
        broker.result(assignment.0.session, taskID: assignment.0.taskID,
                      result: .variant(.ran(ScoredVariant(draw: draw, run: run, seconds: 0.5, scores: scores, pictures: wanted ? [picture, picture] : []))))
        drive()
    }

    /// A directional score in [-0.5, 0.5) spread by the seed.
    static func direction(of seed: UInt64) -> Double { Double(seed % 1000) / 1000 - 0.5 }

    func join(_ session: String, models: Set<String> = ["default"], credit: Int = 1) {
        broker.workerJoined(sessionID: session, nodeID: session, host: "test", models: models)
        if credit > 0 { broker.credit(session, slots: credit) }
        drive()
    }

    /// Calls the broker, then carries out what it decided.
    func run(_ body: (TaskBroker) -> Void) {
        body(broker)
        drive()
    }

    func credit(_ session: String, slots: Int = 1) {
        broker.credit(session, slots: slots)
        drive()
    }

    /// The tasks handed out since the last look.
    func assignments() -> [Assignment] {
        drive()
        defer { unread.removeAll() }
        return unread.map(\.0)
    }

    /// The next task handed to `session` not yet looked at.
    func nextAssignment(for session: String) -> Assignment? {
        nextWork(for: session)?.0
    }

    func nextWork(for session: String) -> (Assignment, TaskWork)? {
        drive()
        guard let index = unread.firstIndex(where: { $0.0.session == session }) else { return nil }
        return unread.remove(at: index)
    }

    func edits(of taskID: String) -> [EditRecord] {
        guard let task = broker.task(taskID), let job = broker.jobs[task.job] else { return [] }
        return task.edits.compactMap { job.edits[$0] }
    }

    /// The worker's stage-1 result for every edit of the task (`failing`: edits it could not run).
    func finishStageOne(_ taskID: String, by session: String, failing: Set<String> = [], omitting missing: String? = nil, prompts: Int? = nil) {
        let results = edits(of: taskID).filter { $0.id != missing }.map { edit -> StageOneEdit in
            if failing.contains(edit.id) { return StageOneEdit(id: edit.id, outcome: .failed(reason: "no such word")) }
            let count = prompts ?? edit.prompts
            let run = EditRun(model: "m", mode: .replace, settings: .init(steps: 2, guidance: 7.5, height: 8, width: 8, scheduler: "DDIMScheduler", precision: .fp32))
            let latents = TensorPayload(name: "latents", shape: [count, 4, 1, 1], floats: [Float](repeating: 0.5, count: count * 4))
            return StageOneEdit(id: edit.id, outcome: .ran(run, seconds: 1, output: latents))
        }
        broker.result(session, taskID: taskID, result: .stageOne(results))
        drive()
    }

    /// The worker's finished image for a finish task.
    func finishImage(_ taskID: String, by session: String, height: Int = 8) {
        let image = TensorPayload(name: "image", elementType: .uint8, shape: [height, 8, 3], bytes: [UInt8](repeating: 200, count: height * 24))
        broker.result(session, taskID: taskID, result: .finish(FinishedImage(seconds: 0.5, image: image)))
        drive()
    }

    func fail(_ taskID: String, by session: String, retryable: Bool, reason: String) {
        broker.failed(session, taskID: taskID, retryable: retryable, reason: reason)
        drive()
    }

    /// Runs every task handed to `session` to its end, asking for more each time, until none is left.
    func work(_ session: String) {
        while let next = nextWork(for: session) {
            switch next.0.kind {
            case .stageOne: finishStageOne(next.0.taskID, by: session)
            case .finish: finishImage(next.0.taskID, by: session)
            case .variants: finishVariant(next)
            }
            credit(session)
        }
    }

    /// The broker's periodic chores, as the coordinator runs them every second.
    func tick(_ seconds: TimeInterval = 0) {
        clock.advance(seconds)
        broker.checkLeases()
        broker.checkUnserved()
        broker.retryOutputs()
        broker.flushManifests()
        board.prune(now: clock.now)
        drive()
    }

    /// The manifest lines of `folder` (the harness's output folder by default).
    func manifest(_ folder: URL? = nil) -> [String] {
        let folder = folder ?? output
        if let memoryStore { return memoryStore.writtenManifests[folder.path] ?? [] }
        let text = (try? String(contentsOf: folder.appendingPathComponent("manifest.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// Whether an edit's pictures are written.
    func picturesWritten(_ edit: String) -> Bool {
        if let memoryStore { return memoryStore.writtenPictures[output.appendingPathComponent(edit).path] != nil }
        return FileManager.default.fileExists(atPath: output.appendingPathComponent(edit).appendingPathComponent("grid.png").path)
    }

    var dashboard: DashboardSnapshot { board.snapshot(of: broker, now: clock.now) }
}
