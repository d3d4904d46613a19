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
                try Self.writeEnvelope(envelope, job: job, db)
            }
        }
        return migrator
    }

    public func nextJobNumber() throws -> Int {
        try database.read { db in (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM jobs") ?? 0) + 1 }
    }

    public func insert(_ job: JournalJob, tasks: [JournalTask]) throws {
        try database.write { db in
            try db.execute(sql: "INSERT INTO jobs (id, output, created, number) VALUES (?, ?, ?, ?)",
                           arguments: [job.id, job.output.path, job.created.timeIntervalSince1970, job.number])
            for (position, edit) in job.edits.enumerated() {
                try db.execute(sql: "INSERT INTO edits (job, id, position, spec, prompts, model, pack_key, state) VALUES (?, ?, ?, '', 0, '', '', ?)",
                               arguments: [job.id, edit.id, position, edit.state.rawValue])
                try Self.writeEnvelope(edit.envelope, job: job.id, db)
            }
            for task in tasks { try Self.write(task, db) }
        }
    }

    public func apply(_ change: JournalChange) throws {
        try database.write { db in
            for task in change.tasks { try Self.write(task, db) }
            for edit in change.edits { try Self.write(edit, db) }
        }
    }

    static func writeEnvelope(_ envelope: EditEnvelope, job: String, _ db: Database) throws {
        try db.execute(sql: """
            UPDATE edits SET spec = ?, prompts = ?, prompt_texts = ?, model = ?, model_key = ?, precision = ?, seed = ?, super_resolution = ?,
                pack_key = ? WHERE job = ? AND id = ?
            """, arguments: [envelope.spec, envelope.prompts.count, try text(envelope.prompts), envelope.capabilityKey, envelope.model,
                             envelope.precision.rawValue, Int64(bitPattern: envelope.seed), envelope.superResolution, envelope.packKey,
                             job, envelope.id])
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
                let edits = try Row.fetchAll(db, sql: "SELECT * FROM edits WHERE job = ? ORDER BY position", arguments: [jobID]).map { e in
                    try Self.edit(e, job: jobID, db)
                }
                jobs.append(JournalJob(id: jobID, number: row["number"], output: URL(fileURLWithPath: row["output"]),
                                       created: Date(timeIntervalSince1970: row["created"]), edits: edits))
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
        let envelope = EditEnvelope(id: id, prompts: prompts, model: row["model_key"], precision: precision,
                                    seed: UInt64(bitPattern: row["seed"] as Int64), superResolution: row["super_resolution"],
                                    packKey: row["pack_key"], spec: row["spec"])
        var images: [Int: ImageRecord] = [:]
        for image in try Row.fetchAll(db, sql: "SELECT * FROM images WHERE job = ? AND edit = ?", arguments: [job, id]) {
            images[image["image"]] = ImageRecord(worker: image["worker"], seconds: image["seconds"])
        }
        let stageOne = (row["stage_one"] as String?).flatMap { try? JSONDecoder().decode(StageOneRecord.self, from: Data($0.utf8)) }
        return JournalEdit(job: job, envelope: envelope, state: EditRecord.State(rawValue: row["state"]) ?? .pending, error: row["error"],
                           stageOne: stageOne, images: images, finishedAt: (row["finished"] as Double?).map(Date.init(timeIntervalSince1970:)))
    }

    private static func text<Value: Encodable>(_ value: Value) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
}

/// Kept in the journal as one flat JSON object: the worker and seconds beside the run's own
/// keys (the layout journals have always had).
extension StageOneRecord: Codable {
    private enum Keys: String, CodingKey { case worker, seconds, model, mode }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        (worker, seconds) = (try container.decode(String.self, forKey: .worker), try container.decode(Double.self, forKey: .seconds))
        run = EditRun(model: try container.decode(String.self, forKey: .model), mode: try container.decode(EditMode.self, forKey: .mode),
                      settings: try EditRun.Settings(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try run.settings.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(worker, forKey: .worker)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(run.model, forKey: .model)
        try container.encode(run.mode, forKey: .mode)
    }
}
