import EditContract
import Foundation
import GRDB
import Wire

/// The journal in SQLite (through GRDB), in STATE/journal.sqlite: write-ahead logged, each
/// change one transaction.
public final class SQLiteJournal: JobJournal {
    let database: DatabaseQueue

    /// The journal in `directory`, made if new, brought to this version's schema if older.
    public init(directory: URL) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw StorageError("--state: \(directory.path) is a file, not a folder; give a folder for the journal and intermediate results")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        database = try DatabaseQueue(path: directory.appendingPathComponent("journal.sqlite").path, configuration: configuration)
        try Self.migrator.migrate(database)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE jobs (id TEXT PRIMARY KEY, output TEXT NOT NULL, created REAL NOT NULL, number INTEGER NOT NULL);
                CREATE TABLE edits (job TEXT NOT NULL, id TEXT NOT NULL, position INTEGER NOT NULL, spec TEXT NOT NULL,
                    prompts INTEGER NOT NULL, model TEXT NOT NULL, pack_key TEXT NOT NULL, state TEXT NOT NULL, error TEXT,
                    stage_one TEXT, finished REAL, PRIMARY KEY (job, id));
                CREATE TABLE tasks (id TEXT PRIMARY KEY, job TEXT NOT NULL, kind TEXT NOT NULL, edits TEXT NOT NULL,
                    image INTEGER NOT NULL, model TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT);
                CREATE TABLE images (job TEXT NOT NULL, edit TEXT NOT NULL, image INTEGER NOT NULL, worker TEXT NOT NULL,
                    seconds REAL NOT NULL, PRIMARY KEY (job, edit, image));
                """)
        }
        // Edits kept as envelopes: the fields outside the spec get columns of their own, filled
        // for older journals from their specs (read this once), and the specs made canonical.
        migrator.registerMigration("v2-envelopes") { db in
            try db.execute(sql: """
                ALTER TABLE edits ADD COLUMN prompt_texts TEXT;
                ALTER TABLE edits ADD COLUMN model_key TEXT;
                ALTER TABLE edits ADD COLUMN precision TEXT;
                ALTER TABLE edits ADD COLUMN seed INTEGER;
                ALTER TABLE edits ADD COLUMN super_resolution INTEGER;
                DELETE FROM tasks WHERE kind = 'noop';
                """)
            for row in try Row.fetchAll(db, sql: "SELECT job, id, spec FROM edits") {
                let (job, id): (String, String) = (row["job"], row["id"])
                let envelope: EditEnvelope
                do { envelope = try EditEnvelope(try EditSpec(json: try StrictJSON.parse(row["spec"]))) } catch {
                    throw StorageError("the journal holds edit \(id) of \(job) as \(error), which this ptp cannot read: run the version that wrote it")
                }
                try Self.writeEnvelope(envelope, job: job, db, withSampling: false)
            }
        }
        // Sampled lines (kept as edits with a plan), their variants' results, and the lengths of
        // append-only manifests.
        migrator.registerMigration("v3-sampling") { db in
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN layout TEXT NOT NULL DEFAULT 'ptp';
                ALTER TABLE edits ADD COLUMN sampling TEXT;
                ALTER TABLE edits ADD COLUMN tally TEXT;
                CREATE TABLE variants (job TEXT NOT NULL, line TEXT NOT NULL, variant INTEGER NOT NULL, seed INTEGER NOT NULL,
                    draw TEXT NOT NULL, run TEXT, worker TEXT NOT NULL, seconds REAL NOT NULL, scores TEXT, error TEXT,
                    staged INTEGER NOT NULL, PRIMARY KEY (job, line, variant));
                CREATE TABLE manifests (folder TEXT PRIMARY KEY, length INTEGER NOT NULL);
                """)
        }
        // Real-image edits carry their picture's digest beside the spec, and masked edits their mask's.
        migrator.registerMigration("v4-pictures") { db in
            try db.execute(sql: "ALTER TABLE edits ADD COLUMN picture TEXT")
            try db.execute(sql: "ALTER TABLE edits ADD COLUMN mask TEXT")
        }
        return migrator
    }

    public func nextJobNumber() throws -> Int {
        try database.read { db in (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM jobs") ?? 0) + 1 }
    }

    public func insert(_ job: JournalJob, tasks: [JournalTask]) throws {
        try database.write { db in
            try db.execute(sql: "INSERT INTO jobs (id, output, created, number, layout) VALUES (?, ?, ?, ?, ?)",
                           arguments: [job.id, job.output.path, job.created.timeIntervalSince1970, job.number, job.layout.rawValue])
            let items = job.edits.map { ($0.envelope, $0.state) } + job.lines.map { ($0.envelope, $0.state) }
            for (position, (envelope, state)) in items.enumerated() {
                try db.execute(sql: "INSERT INTO edits (job, id, position, spec, prompts, model, pack_key, state) VALUES (?, ?, ?, '', 0, '', '', ?)",
                               arguments: [job.id, envelope.id, position, state.rawValue])
                try Self.writeEnvelope(envelope, job: job.id, db)
            }
            for task in tasks { try Self.write(task, db) }
        }
    }

    public func apply(_ change: JournalChange) throws {
        try database.write { db in
            for task in change.tasks { try Self.write(task, db) }
            for edit in change.edits { try Self.write(edit, db) }
            for variant in change.variants { try Self.write(variant, db) }
            for line in change.lines {
                try db.execute(sql: "UPDATE edits SET state = ?, error = ?, finished = ?, tally = ? WHERE job = ? AND id = ?",
                               arguments: [line.state.rawValue, line.error, line.finishedAt?.timeIntervalSince1970, try line.tally.map(Self.text),
                                           line.job, line.id])
            }
            if let (folder, length) = change.manifest {
                try db.execute(sql: "INSERT OR REPLACE INTO manifests (folder, length) VALUES (?, ?)", arguments: [folder.path, length])
            }
        }
    }

    public func manifestLength(of folder: URL) throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT length FROM manifests WHERE folder = ?", arguments: [folder.path]) ?? 0 }
    }

    static func write(_ variant: JournalVariant, _ db: Database) throws {
        let record = variant.record
        try db.execute(sql: """
            INSERT OR IGNORE INTO variants (job, line, variant, seed, draw, run, worker, seconds, scores, error, staged)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [variant.job, variant.line, record.index, Int64(bitPattern: record.seed), try text(record.values),
                             try record.run.map(text), record.worker, record.seconds, try record.scores.map(text), record.error, record.staged])
    }

    /// `withSampling`: the journal has the columns added since v3 (sampling, picture, mask), as every
    /// journal has once migrated.
    static func writeEnvelope(_ envelope: EditEnvelope, job: String, _ db: Database, withSampling: Bool = true) throws {
        var arguments: StatementArguments = [envelope.spec, envelope.prompts.count, try text(envelope.prompts), envelope.capabilityKey, envelope.model,
                                             envelope.precision.rawValue, Int64(bitPattern: envelope.seed), envelope.superResolution, envelope.packKey]
        if withSampling { arguments += [try envelope.sampling.map(text), envelope.picture, envelope.mask] }
        arguments += [job, envelope.id]
        try db.execute(sql: """
            UPDATE edits SET spec = ?, prompts = ?, prompt_texts = ?, model = ?, model_key = ?, precision = ?, seed = ?, super_resolution = ?,
                pack_key = ?\(withSampling ? ", sampling = ?, picture = ?, mask = ?" : "") WHERE job = ? AND id = ?
            """, arguments: arguments)
    }

    static func write(_ task: JournalTask, _ db: Database) throws {
        guard task.state != .committing else { throw StorageError("task \(task.id) was journaled while committing, not as what it commits to") }
        try db.execute(sql: """
            INSERT INTO tasks (id, job, kind, edits, image, model, state, attempts, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts, error = excluded.error
            """, arguments: [task.id, task.job, task.kind.rawValue, task.edits.joined(separator: "\n"), task.image, task.model,
                             task.state.rawValue, task.attempts, task.error])
    }

    static func write(_ edit: JournalEdit, _ db: Database) throws {
        let stageOne = try edit.stageOne.map(text)
        try db.execute(sql: "UPDATE edits SET state = ?, error = ?, stage_one = ?, finished = ? WHERE job = ? AND id = ?",
                       arguments: [edit.state.rawValue, edit.error, stageOne, edit.finishedAt?.timeIntervalSince1970, edit.job, edit.id])
        for (index, image) in edit.images {
            try db.execute(sql: "INSERT OR REPLACE INTO images (job, edit, image, worker, seconds) VALUES (?, ?, ?, ?, ?)",
                           arguments: [edit.job, edit.id, index, image.worker, image.seconds])
        }
    }

    public func load() throws -> JournalContents {
        try database.read { db in
            var jobs: [JournalJob] = []
            for row in try Row.fetchAll(db, sql: "SELECT * FROM jobs ORDER BY number") {
                let jobID: String = row["id"]
                var edits: [JournalEdit] = []
                var lines: [JournalLine] = []
                for item in try Row.fetchAll(db, sql: "SELECT * FROM edits WHERE job = ? ORDER BY position", arguments: [jobID]) {
                    let edit = try Self.edit(item, job: jobID, db)
                    if edit.envelope.sampling != nil { lines.append(try Self.line(edit, item, db)) } else { edits.append(edit) }
                }
                let layoutName: String = row["layout"]
                guard let layout = OutputLayout(rawValue: layoutName) else {
                    throw StorageError("the journal's job \(jobID) has layout '\(layoutName)', which this ptp does not know: run the version that wrote it")
                }
                jobs.append(JournalJob(id: jobID, number: row["number"], output: URL(fileURLWithPath: row["output"]),
                                       created: Date(timeIntervalSince1970: row["created"]), layout: layout, edits: edits, lines: lines))
            }
            let tasks = try Row.fetchAll(db, sql: "SELECT * FROM tasks ORDER BY rowid").map { row -> JournalTask in
                let kindName: String = row["kind"]
                guard let kind = TaskKind(rawValue: kindName) else {
                    throw StorageError("the journal holds a task of kind '\(kindName)', which this ptp does not know: run the version that wrote it")
                }
                return JournalTask(id: row["id"], job: row["job"], kind: kind, edits: (row["edits"] as String).split(separator: "\n").map(String.init),
                                   image: row["image"], model: row["model"], state: TaskRecord.State(rawValue: row["state"]) ?? .queued,
                                   attempts: row["attempts"], error: row["error"])
            }
            return JournalContents(jobs: jobs, tasks: tasks)
        }
    }

    private static func edit(_ row: Row, job: String, _ db: Database) throws -> JournalEdit {
        let id: String = row["id"]
        guard let precision = Precision(rawValue: row["precision"] ?? ""),
              let prompts = try? JSONDecoder().decode([String].self, from: Data((row["prompt_texts"] as String? ?? "").utf8)) else {
            throw StorageError("the journal's record of edit \(id) of \(job) is incomplete: run the version that wrote it")
        }
        var sampling: SamplingPlan?
        if let text = row["sampling"] as String? {
            guard let plan = try? JSONDecoder().decode(SamplingPlan.self, from: Data(text.utf8)) else {
                throw StorageError("the journal's sampling plan of line \(id) of \(job) is unreadable: run the version that wrote it")
            }
            sampling = plan
        }
        let envelope = EditEnvelope(id: id, prompts: prompts, model: row["model_key"], precision: precision,
                                    seed: UInt64(bitPattern: row["seed"] as Int64), superResolution: row["super_resolution"],
                                    packKey: row["pack_key"], sampling: sampling, picture: row["picture"], mask: row["mask"], spec: row["spec"])
        var images: [Int: ImageRecord] = [:]
        for image in try Row.fetchAll(db, sql: "SELECT * FROM images WHERE job = ? AND edit = ?", arguments: [job, id]) {
            images[image["image"]] = ImageRecord(worker: image["worker"], seconds: image["seconds"])
        }
        let stageOne = (row["stage_one"] as String?).flatMap { try? JSONDecoder().decode(StageOneRecord.self, from: Data($0.utf8)) }
        return JournalEdit(job: job, envelope: envelope, state: EditRecord.State(rawValue: row["state"]) ?? .pending, error: row["error"],
                           stageOne: stageOne, images: images, finishedAt: (row["finished"] as Double?).map(Date.init(timeIntervalSince1970:)))
    }

    /// A sampled line: an ended one with its tally, a running one with its variants' results.
    private static func line(_ edit: JournalEdit, _ row: Row, _ db: Database) throws -> JournalLine {
        let decoder = JSONDecoder()
        var line = JournalLine(job: edit.job, envelope: edit.envelope, state: edit.state, error: edit.error, finishedAt: edit.finishedAt,
                               tally: (row["tally"] as String?).flatMap { try? decoder.decode(VariantTally.self, from: Data($0.utf8)) })
        guard line.state != .finished && line.state != .failed else { return line }
        line.variants = try Row.fetchAll(db, sql: "SELECT * FROM variants WHERE job = ? AND line = ? ORDER BY variant",
                                         arguments: [edit.job, edit.id]).map { v in
            VariantRecord(index: v["variant"], seed: UInt64(bitPattern: v["seed"] as Int64),
                          values: (try? decoder.decode([String: Double].self, from: Data((v["draw"] as String).utf8))) ?? [:],
                          run: (v["run"] as String?).flatMap { try? decoder.decode(EditRun.self, from: Data($0.utf8)) },
                          worker: v["worker"], seconds: v["seconds"],
                          scores: (v["scores"] as String?).flatMap { try? decoder.decode(PairScores.self, from: Data($0.utf8)) },
                          error: v["error"], staged: v["staged"])
        }
        return line
    }

    private static func text<Value: Encodable>(_ value: Value) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
}

/// Kept in the journal as one flat JSON object: the worker and seconds beside the run's own
/// keys (the layout journals have always had).
extension StageOneRecord: Codable {
    private enum Keys: String, CodingKey { case worker, seconds, model, mode, inversion }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        (worker, seconds) = (try container.decode(String.self, forKey: .worker), try container.decode(Double.self, forKey: .seconds))
        run = EditRun(model: try container.decode(String.self, forKey: .model), mode: try container.decode(EditMode.self, forKey: .mode),
                      settings: try EditRun.Settings(from: decoder),
                      inversion: try container.decodeIfPresent(EditRun.Inversion.self, forKey: .inversion))
    }

    public func encode(to encoder: any Encoder) throws {
        try run.settings.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(worker, forKey: .worker)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(run.model, forKey: .model)
        try container.encode(run.mode, forKey: .mode)
        try container.encodeIfPresent(run.inversion, forKey: .inversion)
    }
}
