import EditContract
import Foundation
import Wire

/// Pictures carried with batches: kept once by digest before the jobs that name them are taken,
/// read off the event loop and sent with each stage-1 task that edits them, and routed to the
/// worker that last inverted them (whose cache may still hold the inversion).
extension TaskBroker {
    /// The pictures kept on disk when the coordinator starts (`ResultStore.carriedPictures`).
    public func restorePictures(_ kept: [String: Int]) {
        carriedPictures.merge(kept) { old, _ in old }
    }

    /// Which of `digests` are not kept (a client sends only those).
    public func missingPictures(_ digests: [String]) -> [String] {
        var seen = Set<String>()
        return digests.filter { carriedPictures[$0] == nil && seen.insert($0).inserted }
    }

    /// A picture from a client, within the size limit: kept once its bytes are checked (off the
    /// event loop: hashing 64 MB takes a while) to be what its digest names and a PNG or JPEG;
    /// `pictureKept` or `pictureNotKept` comes back.
    /// A picture a client sent ahead of its job; what a client has sent and no job of its names
    /// yet counts against its picture limit, so that pictures never submitted cannot pile up.
    public func pictureArrived(_ picture: CarriedPicture, client: String = "local") throws {
        guard picture.bytes.count <= settings.maximumPictureBytes else {
            throw SubmissionError("picture \(picture.digest.prefix(12)) is \(picture.bytes.count >> 20) MB, over the coordinator's \(settings.maximumPictureBytes >> 20) MB limit; "
                                  + "downscale or recompress it", code: .overLimit)
        }
        let held = (ledger.pictureBytes[client] ?? 0) + ledger.unnamedBytes(of: client)
        guard held + picture.bytes.count <= settings.maximumPictureBytesPerClient else {
            throw SubmissionError("client \(client) has \(held >> 20) MB of pictures in unfinished jobs or sent for none yet; this one would pass the "
                                  + "\(settings.maximumPictureBytesPerClient >> 20) MB one client may (--max-client-picture-mb): submit the jobs that name them first",
                                  code: .overLimit)
        }
        ledger.sent(picture.digest, bytes: picture.bytes.count, by: client)
        output.append(.store(.keepPicture(picture)))
    }

    /// The first edit of a stage-1 task: its picture and mask are every edit's (the pack key says so).
    private func firstEnvelope(of task: TaskRecord) -> EditEnvelope? {
        guard task.kind == .stageOne, let id = task.edits.first else { return nil }
        return jobs[task.job]?.edits[id]?.envelope
    }

    /// The picture a stage-1 task edits, if any.
    func picture(of task: TaskRecord) -> String? { firstEnvelope(of: task)?.picture }

    /// Every picture a stage-1 task carries: its edits' picture and mask.
    func carried(by task: TaskRecord) -> [String] { firstEnvelope(of: task)?.pictures ?? [] }

    /// Checks a job's pictures: each one kept, their bytes within the job's limit.
    /// The bytes of the pictures `edits` name, all of which must be here, within a job's limit.
    @discardableResult
    func checkPictures(of edits: [EditEnvelope]) throws -> Int {
        var total = 0
        for digest in Set(edits.flatMap(\.pictures)).sorted() {
            guard let size = carriedPictures[digest] else {
                let edit = edits.first { $0.pictures.contains(digest) }?.id ?? ""
                throw SubmissionError("edit '\(edit)' names picture \(digest.prefix(12)), which this coordinator was not sent; submit with ptp submit, which sends it first")
            }
            total += size
        }
        guard total <= settings.maximumPictureBytesPerJob else {
            throw SubmissionError("the job's pictures are \(total >> 20) MB, over the \(settings.maximumPictureBytesPerJob >> 20) MB a job may carry "
                                  + "(--max-job-picture-mb); split the batch into several jobs", code: .overLimit)
        }
        return total
    }

    /// A worker's next task: among the first few ready tasks, one of a picture whose inversion
    /// that worker made last, else the first.
    func nextPreferredTask(for session: WorkerSession) -> TaskRecord? {
        // Finishing work goes first, whoever holds what.
        guard !pictureHolders.isEmpty, !session.models.contains(where: { queues[$0]?.hasFinishing == true }) else {
            return nextTask(for: session.models)
        }
        for model in session.models.sorted() {
            let id = queues[model]?.popFirst(within: Self.affinityWindow) { id in
                guard let task = tasks[id], let digest = picture(of: task) else { return false }
                return pictureHolders[digest] == session.nodeID
            }
            if let id, let task = tasks[id], task.state == .queued { return task }
        }
        return nextTask(for: session.models)
    }

    /// The idle worker a newly ready task goes to: the one holding its picture's inversion if
    /// idle, else the longest idle that can run it.
    func idleWorker(for task: TaskRecord) -> Int? {
        if let digest = picture(of: task), let holder = pictureHolders[digest],
           let index = idle.firstIndex(where: { workers[$0]?.nodeID == holder && workers[$0]?.models.contains(task.model) == true }) {
            return index
        }
        return idle.firstIndex { workers[$0]?.models.contains(task.model) ?? false }
    }

    /// How many ready tasks a worker looks through for one of its pictures.
    static let affinityWindow = 64
}
