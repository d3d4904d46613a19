@testable import Coordinator
import EditContract
import Foundation
import Imaging
import Testing
import Wire

/// The broker and its storage: a result counts once it is durable, storage failures send work
/// back or wait for space, and what reaches a client was journaled first.
@Suite("broker and storage: commits, refusals, failures in flight")
struct BrokerStorageTests {
    typealias H = BrokerHarness

    @Test("a result counts only once it is durable: while it commits, a duplicate is ignored and its lease cannot expire")
    func resultsInFlight() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        h.join("w2", credit: 0)
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"])
        h.holding = true
        h.finishStageOne("job-1.s1", by: "w1")
        #expect(h.broker.task("job-1.s1")?.state == .committing && h.broker.jobs[job]?.edits["a"]?.state == .pending)
        #expect(h.broker.status().leasedTasks == 1, "a task being committed still counts as out")
        // Long past its lease, and a second copy of the result: neither changes anything.
        h.tick(120)
        h.finishStageOne("job-1.s1", by: "w1")
        h.credit("w2")
        #expect(h.assignments().isEmpty && h.broker.task("job-1.s1")?.attempts == 1)
        if case .commitStageOne(_, _, let outputs, let change)? = h.held.first {
            #expect(outputs.keys.sorted() == ["a"] && change.tasks.map(\.id) == ["job-1.s1", "job-1.a.f0", "job-1.a.f1"])
        } else {
            Issue.record("no stage-1 commit held: \(h.held)")
        }
        h.release()
        #expect(h.broker.task("job-1.s1")?.state == .done && h.broker.jobs[job]?.edits["a"]?.state == .finishing)
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0"], "the idle worker takes the first image at once")
    }

    @Test("a result storage cannot take runs again; a full disk does not count against the task's attempts")
    func resultsNotCommitted() throws {
        let h = try H(maximumAttempts: 2)
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.memoryJournal?.failure = OutputFileError(path: "/state/journal.sqlite", problem: "cannot write: no space left on the device", fix: "free some space")
        h.finishStageOne("job-1.s1", by: "w1")
        #expect(h.broker.task("job-1.s1")?.attempts == 0 && h.broker.task("job-1.s1")?.lastError?.contains("result not committed") == true)
        h.memoryJournal?.failure = SubmissionError("the journal is corrupt")
        h.credit("w1")
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"])
        h.finishStageOne("job-1.s1", by: "w1")
        h.credit("w1")
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"] && h.broker.task("job-1.s1")?.attempts == 2)
        h.finishStageOne("job-1.s1", by: "w1")
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .failed && h.broker.jobs[job]?.edits["a"]?.error?.contains("the journal is corrupt") == true)
    }

    @Test("a job is accepted only once journaled; one the journal refuses is dropped with the reason, and its ids stay free")
    func jobsJournaledFirst() throws {
        let h = try H()
        h.holding = true
        let job = try h.submit([H.edit("a")])
        #expect(h.broker.jobs[job] == nil && h.broker.progressReport(job) == nil, "not a job until journaled")
        // Its ids are taken while it is being journaled.
        #expect(throws: SubmissionError.self) { try h.broker.submit([H.edit("a")], output: h.output.path) }
        h.release()
        #expect(h.broker.jobs[job] != nil)

        h.memoryJournal?.failure = SubmissionError("disk I/O error")
        let refused = try h.submit([H.edit("b")])
        #expect(h.broker.jobs[refused] == nil && h.refusals[refused]?.contains("disk I/O error") == true, "\(h.refusals)")
        h.memoryJournal?.failure = nil
        let again = try h.submit([H.edit("b")])
        #expect(h.broker.jobs[again] != nil && again != refused)
    }

    @Test("a finish task whose input cannot be read runs again, and the worker's slot is free again")
    func unreadableInput() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.finishStageOne("job-1.s1", by: "w1")
        h.memoryStore?.removeTensors(job: "job-1", edit: "a")
        h.credit("w1")
        #expect(h.assignments().isEmpty)
        // Both images tried twice more on the freed slot, then failed with the reason.
        let task = try #require(h.broker.task("job-1.a.f0"))
        #expect(task.state == .failed && task.lastError?.contains("cannot read its input") == true, "\(task.state) \(task.lastError ?? "")")
        #expect(h.broker.jobs["job-1"]?.edits["a"]?.state == .failed)
    }

    @Test("a result of the wrong kind, or with an output of the wrong shape, leaves its edits pending for the retry")
    func misfitResults() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.broker.result("w1", taskID: "job-1.s1", result: .finish(FinishedImage(seconds: 0, image: TensorPayload(name: "image", shape: [1], floats: [0]))))
        h.drive()
        #expect(h.broker.task("job-1.s1")?.lastError?.contains("a finish result for a stage1 task") == true)
        h.credit("w1")
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"])
        h.finishStageOne("job-1.s1", by: "w1", prompts: 3)
        #expect(h.broker.task("job-1.s1")?.lastError?.contains("for 2 prompts") == true && h.broker.jobs[job]?.edits["a"]?.state == .pending)
        #expect(h.broker.task("job-1.a.f0") == nil)
    }

    @Test("edits are checked as they arrive: ids that cannot be folders, prompt counts outside the contract, empty or over-long keys")
    func envelopesChecked() throws {
        let h = try H()
        var bad: [EditEnvelope] = []
        for id in ["../escape", ".hidden", "", "a/b", String(repeating: "x", count: 300)] { bad.append(with(H.edit("ok")) { $0.id = id }) }
        bad.append(with(H.edit("one")) { $0.prompts = ["only the source"] })
        bad.append(with(H.edit("many")) { $0.prompts = Array(repeating: "p", count: EditSpec.maximumTargets + 2) })
        bad.append(with(H.edit("nomodel")) { $0.model = "" })
        bad.append(with(H.edit("longkey")) { $0.packKey = String(repeating: "k", count: EditEnvelope.maximumKeyLength + 1) })
        for edit in bad {
            #expect(throws: SubmissionError.self, "\(edit.id.prefix(20)) \(edit.prompts.count)") { try h.broker.submit([edit], output: h.output.path) }
        }
        #expect(h.requests.isEmpty, "nothing refused reaches storage")
        let accepted = try h.submit([with(H.edit("fine")) { $0.prompts = Array(repeating: "p", count: EditSpec.maximumTargets + 1) }])
        #expect(h.broker.jobs[accepted]?.edits["fine"]?.prompts == EditSpec.maximumTargets + 1)
    }

    @Test("outputs wait while the disk is full and are written on a later tick; a broken disk fails the edit with the reason")
    func outputsWaitForSpace() throws {
        let h = try H()
        let job = try h.submit([H.edit("a"), H.edit("b", targets: 2)])
        h.memoryStore?.outputFailure = OutputFileError(path: "/out/a/grid.png", problem: "cannot write: no space left on the device", fix: "free some space")
        h.join("w1", credit: 4)
        h.work("w1")
        #expect(h.broker.jobs[job]?.edits.values.allSatisfy { $0.state == .finishing && $0.imagesDone == $0.prompts } == true)
        #expect(h.memoryStore?.tensorCount == 2 + 5, "every latent and image kept until written")
        h.memoryStore?.outputFailure = nil
        h.tick(1)
        #expect(h.broker.jobs[job]?.edits.values.allSatisfy { $0.state == .finished } == true && h.memoryStore?.tensorCount == 0)
        #expect(h.manifest().count == 2)

        try h.submit([H.edit("c")])
        h.memoryStore?.outputFailure = OutputFileError(path: "/out/c/source.png", problem: "is a directory, which ptp does not replace", fix: "remove it")
        h.credit("w1")
        h.work("w1")
        let failed = try #require(h.broker.jobs["job-2"]?.edits["c"])
        #expect(failed.state == .failed && failed.error?.contains("is a directory") == true, "\(failed.error ?? "")")
    }

    @Test("a manifest line is what JSONEncoder writes of the whole line, with the spec as the client sealed it")
    func manifestLines() throws {
        let h = try H()
        var spec = EditSpec(id: "m", source: "a cat on a bike", targets: ["a dog on a bike"])
        spec.model = "/models/sd-1.5"
        spec.crossReplace = CrossReplaceSchedule(StepRange(start: 0.1, end: 0.8), words: ["dog": StepRange(end: 0.5)])
        spec.reweight = ["dog": 2.5]
        try h.submit([try EditEnvelope(spec)])
        h.join("w1", models: ["/models/sd-1.5"], credit: 3)
        h.work("w1")
        let line = try #require(h.manifest().first)
        // The same line as one JSONEncoder pass over the whole, the spec decoded back to JSON.
        let object = try JSONValue.parse(Data(line.utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(String(decoding: try encoder.encode(object), as: UTF8.self) == line)
        let sealed = try #require(object["spec"])
        #expect(try EditSpec(json: sealed) == spec)
        #expect(line.contains(#""spec":{"#) && line.contains(#""model":"/models/sd-1.5""#) && !line.contains(#"\/"#), "\(line)")
        #expect(object["settings"]?["scheduler"]?.stringValue == "DDIMScheduler" && object["workers"]?["finish"]?.arrayValue?.count == 2)
    }
}
