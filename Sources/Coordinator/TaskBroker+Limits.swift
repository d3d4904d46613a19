import EditContract
import Foundation

/// Who submitted each unfinished job and what it holds: the sums the per-client and overall
/// limits are checked against. A job leaves it when it is complete or was not stored.
struct ClientLedger {
    struct Entry {
        let client: String
        let edits: Int
        let pictureBytes: Int
    }

    private(set) var jobs: [String: Entry] = [:]
    private(set) var queued: [String: Int] = [:]
    private(set) var pictureBytes: [String: Int] = [:]
    private(set) var totalQueued = 0
    /// Pictures each client sent that no job of its has named yet, with their sizes.
    private(set) var unnamed: [String: [String: Int]] = [:]

    func unnamedBytes(of client: String) -> Int { unnamed[client]?.values.reduce(0, +) ?? 0 }

    mutating func sent(_ digest: String, bytes: Int, by client: String) { unnamed[client, default: [:]][digest] = bytes }

    /// The job's pictures now count with the job.
    mutating func named(_ digests: Set<String>, by client: String) {
        for digest in digests { unnamed[client]?[digest] = nil }
        if unnamed[client]?.isEmpty == true { unnamed[client] = nil }
    }

    mutating func open(_ job: String, client: String, edits: Int, pictureBytes bytes: Int) {
        jobs[job] = Entry(client: client, edits: edits, pictureBytes: bytes)
        queued[client, default: 0] += edits
        pictureBytes[client, default: 0] += bytes
        totalQueued += edits
    }

    mutating func close(_ job: String) {
        guard let entry = jobs.removeValue(forKey: job) else { return }
        queued[entry.client, default: 0] -= entry.edits
        pictureBytes[entry.client, default: 0] -= entry.pictureBytes
        if queued[entry.client] == 0 { (queued[entry.client], pictureBytes[entry.client]) = (nil, nil) }
        totalQueued -= entry.edits
    }
}

extension TaskBroker {
    /// The limits on a job's lines and on what its client and everyone have queued, checked
    /// before anything of the job is kept: beyond them a refusal naming the limit.
    func checkLimits(_ edits: [EditEnvelope], client: String) throws {
        for (index, edit) in edits.enumerated() where edit.spec.utf8.count > settings.maximumLineBytes {
            throw SubmissionError("edits[\(index)] ('\(edit.id.prefix(64))') is \(edit.spec.utf8.count) bytes, over the \(settings.maximumLineBytes >> 10) KB "
                                  + "a batch line may be here (--max-line-kb); a text encoder reads 77 tokens of a prompt: shorten it", code: .overLimit)
        }
        guard edits.count <= settings.maximumJobEdits else {
            throw SubmissionError("the job holds \(edits.count) edits, over the \(settings.maximumJobEdits) a job may hold here (--max-job-edits); "
                                  + "split the batch into several jobs", code: .overLimit)
        }
        let queued = ledger.queued[client] ?? 0
        guard queued + edits.count <= settings.maximumClientQueuedEdits else {
            throw SubmissionError("client \(client) has \(queued) edits queued in unfinished jobs; these \(edits.count) would pass the "
                                  + "\(settings.maximumClientQueuedEdits) one client may queue (--max-client-queued-edits): submit again as its jobs finish",
                                  code: .overLimit)
        }
        guard ledger.totalQueued + edits.count <= settings.maximumQueuedEdits else {
            throw SubmissionError("the coordinator has \(ledger.totalQueued) edits queued; these \(edits.count) would pass the "
                                  + "\(settings.maximumQueuedEdits) it holds at once (--max-queued-edits): submit again as jobs finish", code: .overLimit)
        }
    }

    func checkPictureLimit(_ bytes: Int, client: String) throws {
        let held = ledger.pictureBytes[client] ?? 0
        guard held + bytes <= settings.maximumPictureBytesPerClient else {
            throw SubmissionError("client \(client)'s unfinished jobs name \(held >> 20) MB of pictures; this job's \(bytes >> 20) MB would pass the "
                                  + "\(settings.maximumPictureBytesPerClient >> 20) MB one client may (--max-client-picture-mb): submit it as they finish",
                                  code: .overLimit)
        }
    }

    /// Jobs that are complete leave the ledger (each second, with the leases).
    func releaseFinishedJobs() {
        for (id, _) in ledger.jobs where unstoredJobs[id] == nil {
            if jobs[id].map({ $0.isComplete }) ?? true { ledger.close(id) }
        }
    }
}
