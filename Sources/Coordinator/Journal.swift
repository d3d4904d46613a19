import Foundation
import EditContract
import GRDB
import Wire

/// The coordinator's durable record (SQLite through GRDB): jobs, their edits, tasks and
/// finished images. A restarted coordinator rebuilds its state from it, so nothing is lost and
/// nothing finished runs again. Leases are not journaled: after a restart every unfinished
/// task is queued again.
public final class Journal {
    let database: DatabaseQueue

    /// The journal in `directory` (journal.sqlite), made if new.
    public convenience init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        try self.init(database: try DatabaseQueue(path: directory.appendingPathComponent("journal.sqlite").path, configuration: configuration))
    }

    private init(database: DatabaseQueue) throws {
        self.database = database
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
        try migrator.migrate(database)
    }

    func nextJobNumber() throws -> Int {
        try database.read { db in (try Int.fetchOne(db, sql: "SELECT MAX(number) FROM jobs") ?? 0) + 1 }
    }

    func insert(job: JobRecord, number: Int, tasks: [TaskRecord]) throws {
        try database.write { db in
            try db.execute(sql: "INSERT INTO jobs (id, output, created, number) VALUES (?, ?, ?, ?)",
                           arguments: [job.id, job.output.path, job.created.timeIntervalSince1970, number])
            for (position, id) in job.editOrder.enumerated() {
                guard let edit = job.edits[id] else { continue }
                try db.execute(sql: "INSERT INTO edits (job, id, position, spec, prompts, model, pack_key, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               arguments: [job.id, id, position, try edit.spec.jsonText(), edit.prompts, edit.model, edit.packKey, edit.state.rawValue])
            }
            for task in tasks { try Self.insert(task, db) }
        }
    }

    static func insert(_ task: TaskRecord, _ db: Database) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO tasks (id, job, kind, edits, image, model, state, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       arguments: [task.id, task.job, task.kind.rawValue, task.edits.joined(separator: "\n"), task.image, task.model,
                                   task.state.rawValue, task.attempts])
    }

    /// A stage-1 task done: its edits' records, and their finish tasks.
    func stageOneDone(task: TaskRecord, edits: [EditRecord], finishTasks: [TaskRecord]) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE tasks SET state = ?, attempts = ? WHERE id = ?", arguments: [task.state.rawValue, task.attempts, task.id])
            for edit in edits { try Self.update(edit, db) }
            for finish in finishTasks { try Self.insert(finish, db) }
        }
    }

    func imageDone(task: TaskRecord, edit: EditRecord, worker: String, seconds: Double) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE tasks SET state = ?, attempts = ? WHERE id = ?", arguments: [task.state.rawValue, task.attempts, task.id])
            try db.execute(sql: "INSERT OR REPLACE INTO images (job, edit, image, worker, seconds) VALUES (?, ?, ?, ?, ?)",
                           arguments: [edit.job, edit.id, task.image, worker, seconds])
            try Self.update(edit, db)
        }
    }

    func update(task: TaskRecord, edits: [EditRecord] = []) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE tasks SET state = ?, attempts = ?, error = ? WHERE id = ?",
                           arguments: [task.state.rawValue, task.attempts, task.lastError, task.id])
            for edit in edits { try Self.update(edit, db) }
        }
    }

    func update(edit: EditRecord) throws {
        try database.write { db in try Self.update(edit, db) }
    }

    static func update(_ edit: EditRecord, _ db: Database) throws {
        let stageOne = try edit.stageOne.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try db.execute(sql: "UPDATE edits SET state = ?, error = ?, stage_one = ?, finished = ? WHERE job = ? AND id = ?",
                       arguments: [edit.state.rawValue, edit.error, stageOne, edit.finishedAt?.timeIntervalSince1970, edit.job, edit.id])
    }

    /// Every job, edit and task, for a restart.
    func load() throws -> (jobs: [JobRecord], tasks: [TaskRecord]) {
        try database.read { db in
            var jobs: [JobRecord] = []
            for row in try Row.fetchAll(db, sql: "SELECT * FROM jobs ORDER BY number") {
                let jobID: String = row["id"]
                var edits: [EditRecord] = []
                for e in try Row.fetchAll(db, sql: "SELECT * FROM edits WHERE job = ? ORDER BY position", arguments: [jobID]) {
                    let spec: EditSpec
                    do { spec = try EditSpec.fromJSON(e["spec"], what: "edit \(e["id"] as String) of \(jobID)") } catch {
                        throw SubmissionError("the journal holds \(error), which this ptp cannot read: run the version that wrote it")
                    }
                    let edit = EditRecord(job: jobID, spec: spec)
                    edit.state = EditRecord.State(rawValue: e["state"]) ?? .pending
                    edit.error = e["error"]
                    if let text: String = e["stage_one"] { edit.stageOne = try? JSONDecoder().decode(EditRecord.StageOneInfo.self, from: Data(text.utf8)) }
                    if let finished: Double = e["finished"] { edit.finishedAt = Date(timeIntervalSince1970: finished) }
                    for image in try Row.fetchAll(db, sql: "SELECT * FROM images WHERE job = ? AND edit = ?", arguments: [jobID, edit.id]) {
                        edit.images[image["image"]] = (image["worker"], image["seconds"])
                    }
                    edits.append(edit)
                }
                jobs.append(JobRecord(id: jobID, output: URL(fileURLWithPath: row["output"]),
                                      created: Date(timeIntervalSince1970: row["created"]), edits: edits))
            }
            let tasks = try Row.fetchAll(db, sql: "SELECT * FROM tasks ORDER BY rowid").map { row -> TaskRecord in
                let kindName: String = row["kind"]
                guard let kind = TaskKind(rawValue: kindName) else {
                    throw SubmissionError("the journal holds a task of kind '\(kindName)', which this ptp does not know: run the version that wrote it")
                }
                let task = TaskRecord(id: row["id"], job: row["job"], kind: kind,
                                      edits: (row["edits"] as String).split(separator: "\n").map(String.init),
                                      image: row["image"], model: row["model"],
                                      state: TaskRecord.State(rawValue: row["state"]) ?? .queued, attempts: row["attempts"])
                task.lastError = row["error"]
                return task
            }
            return (jobs, tasks)
        }
    }
}
