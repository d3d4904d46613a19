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
        h.memoryJournal?.failure = StorageError("the journal is corrupt")
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

        h.memoryJournal?.failure = StorageError("disk I/O error")
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
        bad.append(with(H.edit("newline")) { $0.spec = "{\"id\":\"newline\"}\n{\"id\":\"forged\"}" })
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

    @Test("a job is reported complete only once its manifest lists every edit")
    func completeOnceTheManifestIsWritten() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.holdingManifests = true
        h.join("w1", credit: 3)
        h.work("w1")
        #expect(h.broker.jobs[job]?.isComplete == true && h.broker.progressReport(job)?.job.state == "running" && h.manifest().isEmpty)
        let told = h.changed.count
        h.release()
        #expect(h.broker.progressReport(job)?.job.state == "completed" && h.manifest().count == 1)
        #expect(h.changed.count == told + 1 && h.changed.last == job, "its watchers hear of it once the manifest is written")
    }

    @Test("a finish task's lease starts when its work goes out, so a busy disk expires nothing a worker has not seen")
    func leasesStartWhenSent() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1")
        h.finishStageOne(try #require(h.nextAssignment(for: "w1")).taskID, by: "w1")
        h.holding = true
        h.credit("w1")
        #expect(h.assignments().isEmpty && h.broker.task("job-1.a.f0")?.state == .leased, "assigned, its input being read")
        h.tick(300)
        #expect(h.broker.task("job-1.a.f0")?.attempts == 1 && h.broker.task("job-1.a.f0")?.worker == "w1", "no lease ran out")
        h.release()
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0"])
        h.tick(61)
        #expect(h.broker.task("job-1.a.f0")?.state == .queued, "the lease runs from when the work went out")
    }

    @Test("a finish task committed elsewhere while its input was read frees the worker's slot, which takes the next task")
    func inputReadForATaskDoneElsewhere() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1")
        h.finishStageOne(try #require(h.nextAssignment(for: "w1")).taskID, by: "w1")
        h.credit("w1")
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0"])
        // w1 goes silent past its lease; w2 takes both images, but before f0's input is read,
        // w1's result for it arrives after all and is committed.
        h.tick(61)
        h.holding = true
        h.join("w2", credit: 2)
        h.finishImage("job-1.a.f0", by: "w1")
        h.release()
        #expect(h.broker.task("job-1.a.f0")?.state == .done)
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-1.a.f1", kind: .finish)])
        // The slot f0's assignment took is free again: w2 takes new work at once.
        try h.submit([H.edit("b")])
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-2.s1", kind: .stageOne)])
    }

    @Test("no work goes out while storage is behind by the limit of results in flight; it resumes as they are stored")
    func backpressure() throws {
        let h = try H(packPrompts: 2, commitsInFlight: 1)
        try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        h.join("w2", credit: 0)
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"])
        h.holding = true
        h.finishStageOne("job-1.s1", by: "w1")
        h.credit("w2")
        h.credit("w1")
        #expect(h.assignments().isEmpty, "a result waits for storage: nothing more goes out")
        h.release()
        let next = h.assignments()
        #expect(next.count == 2 && Set(next.map(\.session)) == ["w1", "w2"], "\(next)")
    }

    @Test("edits of different models are never packed together, whatever key a client gives them")
    func packingByCapability() throws {
        let h = try H(packPrompts: 8)
        let forged = with(H.edit("b", precision: .bf16)) { $0.packKey = H.edit("a").packKey }
        try h.submit([H.edit("a"), forged])
        #expect(h.broker.task("job-1.s1")?.edits == ["a"] && h.broker.task("job-1.s2")?.edits == ["b"])
    }

    @Test("a manifest line holds a spec as sealed when it is one compact JSON object, else as a string that cannot break the line")
    func hostileSpecsInTheManifest() throws {
        let h = try H()
        let forged = with(H.edit("f")) { $0.spec = #"{"id":"f"},"status":"ok","x":{"#  + "}" }
        let spaced = with(H.edit("g")) { $0.spec = #"{"id": "g"}"# }
        try h.submit([forged, spaced, H.edit("ok")])
        h.join("w1", credit: 1)
        // The worker refuses the two it cannot open; the third runs.
        while let next = h.nextAssignment(for: "w1") {
            if next.kind == .stageOne {
                h.finishStageOne(next.taskID, by: "w1", failing: ["f", "g"])
            } else {
                h.finishImage(next.taskID, by: "w1")
            }
            h.credit("w1")
        }
        h.tick()
        let lines = h.manifest()
        #expect(lines.count == 3)
        for line in lines {
            let object = try #require(try JSONValue.parse(Data(line.utf8)).objectValue, "\(line)")
            #expect(object["status"]?.stringValue == (object["id"]?.stringValue == "ok" ? "ok" : "failed"), "\(line)")
        }
        #expect(lines[0].contains(#""spec":"{\"id\":\"f\"},\"status\":\"ok\",\"x\":{}""#), "\(lines[0])")
        #expect(lines[2].contains(#""spec":{"cross_replace""#), "\(lines[2])")
    }
}

@Suite("compact JSON objects")
struct CompactJSONObjectTests {
    @Test("canonical JSON passes; whitespace, control characters, trailing text, bad tokens and deep nesting do not")
    func recognizer() throws {
        var spec = EditSpec(id: "x", source: "a \"quoted\" cat\\/é😀", targets: ["a dog\t"])
        spec.reweight = ["dog": -2.5e-7]
        spec.crossReplace = CrossReplaceSchedule(StepRange(start: 0, end: 1), words: ["dog": StepRange(end: 0.5)])
        #expect(CompactJSONObject.matches(try EditEnvelope(spec).spec))
        for good in [#"{}"#, #"{"a":[]}"#, #"{"a":[1,-0.5,2e10,true,false,null,"\u00e9"],"b":{"c":{}}}"#] {
            #expect(CompactJSONObject.matches(good), "\(good)")
        }
        let deep = String(repeating: #"{"a":"#, count: 100) + "1" + String(repeating: "}", count: 100)
        for bad in [#"{"a": 1}"#, "{\"a\":\"\n\"}", #"{"a":1},"status":"ok","x":{}"#, #"{"a":1}x"#, #"[1]"#, #"{"a":01}"#,
                    #"{"a":1,}"#, #"{"a"}"#, #"{"a":tru}"#, #"{"a":"\x"}"#, #"{"a":"\u12"}"#, #"{"a":-}"#, #"{"a":1.}"#, #"{"a":1e}"#,
                    #"{"a":"#, "", deep] {
            #expect(!CompactJSONObject.matches(bad), "\(bad.prefix(40))")
        }
    }
}
