@testable import Coordinator
import EditContract
import Foundation
import GRDB
import Logging
import Testing
import Wire

/// The SQLite journal, older journals brought up to date, and the storage queue's order.
@Suite("journal and storage queue")
struct JournalTests {
    typealias H = BrokerHarness

    @Test("a restart from the SQLite journal and files resumes as one from memory does, and finishes the job with the same manifest")
    func durableRestart() throws {
        func run(durable: Bool) throws -> (before: [String: EditRecord.State], manifest: [String]) {
            let h = try H(packPrompts: 2, durable: durable)
            let job = try h.submit([H.edit("a"), H.edit("b", targets: 2), H.edit("c", precision: .bf16)])
            h.join("w1", models: ["default"], credit: 1)
            h.work("w1")
            // "c" waits for a bf16 worker when the coordinator dies.
            try h.restart()
            let edits = try #require(h.broker.jobs[job]?.edits)
            let states = edits.mapValues(\.state)
            h.join("w2", models: ["default@bf16"], credit: 1)
            h.work("w2")
            h.tick()
            // The times differ between runs; the rest does not.
            let manifest = h.manifest().map { $0.replacingOccurrences(of: #""finished_at":"[^"]*""#, with: "", options: .regularExpression) }
            return (states, manifest)
        }
        let memory = try run(durable: false), durable = try run(durable: true)
        #expect(memory.before == ["a": .finished, "b": .finished, "c": .pending] && durable.before == memory.before)
        #expect(durable.manifest.count == 3 && durable.manifest == memory.manifest, "\(durable.manifest)\n\(memory.manifest)")
    }

    @Test("a journal of the older layout (specs as escaped JSON, no envelope columns, a benchmark's no-op tasks) is brought up to date")
    func olderJournal() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-v1-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = try DatabaseQueue(path: folder.appendingPathComponent("journal.sqlite").path)
        try database.write { db in
            try db.execute(sql: """
                CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                INSERT INTO grdb_migrations VALUES ('v1');
                CREATE TABLE jobs (id TEXT PRIMARY KEY, output TEXT NOT NULL, created REAL NOT NULL, number INTEGER NOT NULL);
                CREATE TABLE edits (job TEXT NOT NULL, id TEXT NOT NULL, position INTEGER NOT NULL, spec TEXT NOT NULL,
                    prompts INTEGER NOT NULL, model TEXT NOT NULL, pack_key TEXT NOT NULL, state TEXT NOT NULL, error TEXT,
                    stage_one TEXT, finished REAL, PRIMARY KEY (job, id));
                CREATE TABLE tasks (id TEXT PRIMARY KEY, job TEXT NOT NULL, kind TEXT NOT NULL, edits TEXT NOT NULL,
                    image INTEGER NOT NULL, model TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT);
                CREATE TABLE images (job TEXT NOT NULL, edit TEXT NOT NULL, image INTEGER NOT NULL, worker TEXT NOT NULL,
                    seconds REAL NOT NULL, PRIMARY KEY (job, edit, image));
                INSERT INTO jobs VALUES ('job-7', '/out', 1800000000, 7);
                INSERT INTO edits VALUES ('job-7', 'a', 0,
                    '{"cross_replace":0.8,"id":"a","mode":"auto","model":"\\/models\\/x","precision":"bf16","seed":5,"self_replace":0.4,"source":"a cat","super_resolution":true,"targets":["a dog"]}',
                    2, '/models/x@bf16', '/models/x@bf16|-|-|-|-', 'finishing', NULL,
                    '{"worker":"w1","model":"x@1234","mode":"replace","seconds":1.5,"steps":20,"guidance":7.5,"height":512,"width":512}', NULL);
                INSERT INTO tasks VALUES ('job-7.s1', 'job-7', 'stage1', 'a', -1, '/models/x@bf16', 'done', 1, NULL);
                INSERT INTO tasks VALUES ('job-7.a.f0', 'job-7', 'finish', 'a', 0, '/models/x@bf16', 'done', 1, NULL);
                INSERT INTO tasks VALUES ('job-7.a.f1', 'job-7', 'finish', 'a', 1, '/models/x@bf16', 'leased', 1, NULL);
                INSERT INTO tasks VALUES ('bench-8.n0', 'bench-8', 'noop', '', -1, 'noop', 'queued', 0, NULL);
                INSERT INTO images VALUES ('job-7', 'a', 0, 'w1', 0.25);
                """)
        }
        let journal = try SQLiteJournal(directory: folder)
        let contents = try journal.load()
        let edit = try #require(contents.jobs.first?.edits.first)
        #expect(edit.envelope.model == "/models/x" && edit.envelope.precision == .bf16 && edit.envelope.seed == 5
                && edit.envelope.prompts == ["a cat", "a dog"] && edit.envelope.capabilityKey == "/models/x@bf16")
        let opened = try edit.envelope.open()
        #expect(!edit.envelope.spec.contains(#"\/"#) && opened.model == "/models/x", "the spec is canonical: \(edit.envelope.spec)")
        #expect(edit.stageOne == StageOneRecord(worker: "w1", seconds: 1.5, run: EditRun(model: "x@1234", mode: .replace, settings: .init(
            steps: 20, guidance: 7.5, height: 512, width: 512, scheduler: nil, precision: nil))))
        #expect(edit.images == [0: ImageRecord(worker: "w1", seconds: 0.25)])
        #expect(contents.tasks.map(\.id) == ["job-7.s1", "job-7.a.f0", "job-7.a.f1"], "no-op tasks are dropped")
        #expect(try journal.nextJobNumber() == 8)
        // Resumed: the image left goes out again.
        let broker = TaskBroker(nextJobNumber: try journal.nextJobNumber(), metrics: CoordinatorMetrics(), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        broker.restore(contents)
        #expect(broker.task("job-7.a.f1")?.state == .queued && broker.status().queuedTasks == 1)
    }

    @Test("sampled lines: their plans, variants (the first result of one kept), tallies and manifest lengths survive in SQLite")
    func sampledLines() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-journal-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let journal = try SQLiteJournal(directory: folder)
        let plan = SamplingPlan(samples: 3, keep: 1, filter: ScoreFilter(direction: 0.2), keepRejected: true, scorer: "clip", instruction: "make it a square")
        let lines = ["a", "b"].map { id in
            var spec = EditSpec(id: id, source: "a red circle", targets: ["a red square"])
            spec.sampling = plan
            return JournalLine(job: "job-1", envelope: try! EditEnvelope(spec), state: .pending)
        }
        try journal.insert(JournalJob(id: "job-1", number: 1, output: URL(fileURLWithPath: "/out"), created: Date(timeIntervalSince1970: 1_800_000_000),
                                      layout: .hf, edits: [], lines: lines), tasks: [])
        let run = EditRun(model: "m", mode: .replace, settings: .init(steps: 2, guidance: 7.5, height: 8, width: 8, scheduler: nil, precision: .fp32))
        let record = VariantRecord(index: 1, seed: 1 << 52, values: ["guidance": 9.5], run: run, worker: "w1", seconds: 2,
                                   scores: PairScores(text0: 0.3, text1: 0.25, direction: 0.4, image: 0.8), error: nil, staged: true)
        try journal.apply(JournalChange(variants: [JournalVariant(job: "job-1", line: "a", record: record)]))
        // A second result of the same variant (a lease that expired) changes nothing.
        try journal.apply(JournalChange(variants: [JournalVariant(job: "job-1", line: "a", record: with(record) { $0.seconds = 9 })]))
        var tally = VariantTally()
        (tally.done, tally.kept, tally.rejected) = (3, 1, ["ranked": 2])
        try journal.apply(JournalChange(lines: [with(lines[1]) { $0.state = .finished; $0.tally = tally; $0.finishedAt = Date(timeIntervalSince1970: 1_800_000_100) }],
                                        manifest: (URL(fileURLWithPath: "/out"), 1234)))
        let job = try #require(try journal.load().jobs.first)
        #expect(job.layout == .hf && job.edits.isEmpty && job.lines.map(\.id) == ["a", "b"])
        #expect(job.lines[0].envelope.sampling == plan && job.lines[0].envelope.capabilityKey == "default+scorer:clip")
        #expect(job.lines[0].variants == [record], "\(job.lines[0].variants)")
        #expect(job.lines[1].state == .finished && job.lines[1].tally == tally && job.lines[1].variants.isEmpty)
        #expect(try journal.manifestLength(of: URL(fileURLWithPath: "/out")) == 1234)
        #expect(try journal.manifestLength(of: URL(fileURLWithPath: "/elsewhere")) == 0)
    }

    @Test("the journal's stage-1 record keeps its flat JSON layout")
    func stageOneLayout() throws {
        let record = StageOneRecord(worker: "w1", seconds: 2, run: EditRun(model: "m", mode: .refine, settings: .init(
            steps: 4, guidance: 1.5, height: 64, width: 96, scheduler: "EulerDiscreteScheduler", precision: .bf16)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text = String(decoding: try encoder.encode(record), as: UTF8.self)
        #expect(text == #"{"guidance":1.5,"height":64,"mode":"refine","model":"m","precision":"bf16","scheduler":"EulerDiscreteScheduler","seconds":2,"steps":4,"width":96,"worker":"w1"}"#)
        #expect(try JSONDecoder().decode(StageOneRecord.self, from: Data(text.utf8)) == record)
    }

    @Test("the storage queue keeps order, and manifest rewrites waiting for one folder collapse into the latest")
    func storageQueueOrder() throws {
        let gate = GatedStore()
        let queue = StorageQueue(Storage(journal: MemoryJournal(), store: gate, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }))
        let folder = URL(fileURLWithPath: "/out")
        func manifest(_ id: String) -> StorageRequest { .writeManifest(folder: folder, lines: [], jobs: [id]) }
        queue.submit(manifest("first")) { _ in }
        gate.started.wait()
        // The first write is under way; three more wait, then a write elsewhere.
        for id in ["second", "third", "fourth"] { queue.submit(manifest(id)) { _ in } }
        queue.submit(.writeManifest(folder: URL(fileURLWithPath: "/other"), lines: [], jobs: ["other"])) { _ in }
        gate.open.signal()
        let done = DispatchSemaphore(value: 0)
        queue.whenIdle { done.signal() }
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(gate.writes == ["/out", "/out", "/other"], "\(gate.writes)")
    }
}

/// A store whose first manifest write waits for the test.
final class GatedStore: ResultStore, @unchecked Sendable {
    let started = DispatchSemaphore(value: 0)
    let open = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var written: [String] = []
    var writes: [String] { lock.withLock { written } }

    func prepareOutput(_ folder: URL) throws -> Bool { false }
    func save(_ tensor: TensorPayload, job: String, edit: String, name: String) throws {}
    func load(job: String, edit: String, name: String) throws -> TensorPayload { throw StorageError("nothing stored") }
    func writePictures(job: String, edit: String, count: Int, to folder: URL) throws {}
    func removeTensors(job: String, edit: String) {}
    func writeLine(_ outputs: LineOutputs) throws {}
    func appendManifest(_ lines: [String], to folder: URL, after length: Int) throws -> Int { length }
    func writeDatasetFiles(in folder: URL, layout: OutputLayout) throws {}
    func keepCarriedPicture(_ picture: CarriedPicture) throws {}
    func carriedPicture(_ digest: String) throws -> CarriedPicture { throw StorageError("no pictures kept") }
    func carriedPictures() throws -> [String: Int] { [:] }

    func writeManifest(_ lines: [ManifestLine], to folder: URL) throws {
        let first = lock.withLock { written.isEmpty }
        if first {
            started.signal()
            open.wait()
        }
        lock.withLock { written.append(folder.path) }
    }
}
