import Coordinator
import EditContract
import Foundation
import Testing
import Wire

/// The coordinator's scheduling rules, on the core alone: a manual clock, no process, no
/// socket. Workers are played by the harness.
@Suite("scheduler core: packing, ordering, leases, retries, membership, restart")
struct SchedulerTests {
    typealias H = SchedulerHarness

    @Test("edits are packed into stage-1 tasks while their prompts fit and their settings agree")
    func packing() throws {
        let h = try H(packPrompts: 4)
        try h.submit([H.edit("a"), H.edit("b"), H.edit("c"), H.edit("d", steps: 10), H.edit("e"), H.edit("f", targets: 4), H.edit("g")])
        let groups = (1...7).map { h.core.task("job-1.s\($0)")?.edits ?? [] }
        #expect(groups == [["a", "b"], ["c"], ["d"], ["e"], ["f"], ["g"], []], "\(groups)")
        #expect(h.core.task("job-1.s1")?.kind == .stageOne)
    }

    @Test("a finished stage 1's images go out before another edit's stage 1 starts")
    func finishingBeforeStarting() throws {
        let h = try H(packPrompts: 2)
        try h.submit([H.edit("a"), H.edit("b"), H.edit("c")])
        h.join("w1")
        #expect(h.assignments() == [Assignment(session: "w1", taskID: "job-1.s1", kind: .stageOne)])
        try h.finishStageOne("job-1.s1", by: "w1")
        var order: [String] = []
        for _ in 0..<3 {
            h.core.credit("w1", slots: 1)
            guard let next = h.nextAssignment(for: "w1") else { break }
            order.append(next.taskID)
            if next.kind == .finish { try h.finishImage(next.taskID, by: "w1") } else { try h.finishStageOne(next.taskID, by: "w1") }
        }
        #expect(order == ["job-1.a.f0", "job-1.a.f1", "job-1.s2"])
    }

    @Test("a silent worker's lease expires and its task goes to another worker")
    func leaseExpiry() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1")
        h.join("w2")
        #expect(h.assignments() == [Assignment(session: "w1", taskID: "job-1.s1", kind: .stageOne)])
        h.clock.advance(59)
        h.core.checkLeases()
        #expect(h.assignments().isEmpty, "the lease expired early")
        h.clock.advance(2)
        h.core.checkLeases()
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-1.s1", kind: .stageOne)])
        #expect(h.core.task("job-1.s1")?.worker == "w2" && h.core.task("job-1.s1")?.attempts == 2)
    }

    @Test("heartbeats and progress keep a lease alive")
    func heartbeatsRenewLeases() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.clock.advance(50)
        h.core.heartbeat("w1", taskIDs: ["job-1.s1"])
        h.clock.advance(50)
        h.core.progress("w1", taskID: "job-1.s1", step: 3, total: 20)
        h.clock.advance(50)
        h.core.checkLeases()
        #expect(h.core.task("job-1.s1")?.state == .leased && h.core.task("job-1.s1")?.attempts == 1)
        #expect(h.core.status().nodes.first?.task == "job-1.s1 3/20")
        h.clock.advance(11)
        h.core.checkLeases()
        #expect(h.core.task("job-1.s1")?.state == .queued && h.core.status().queuedTasks == 1)
    }

    @Test("a task that keeps failing fails its edits after the attempt cap, with the last reason")
    func retryCap() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        var attempts = 0
        while let next = h.nextAssignment(for: "w1") {
            attempts += 1
            h.core.failed("w1", taskID: next.taskID, retryable: true, reason: "out of memory")
            h.core.credit("w1", slots: 1)
        }
        #expect(attempts == 3)
        #expect(h.core.task("job-1.s1")?.state == .failed)
        let report = try #require(h.core.progressReport(job))
        #expect(report.failures["a"] == "failed 3 times; last: out of memory")
        #expect(report.job.state == "completed-with-failures")
        h.core.flushManifests()
        #expect(h.manifest().count == 1 && h.manifest()[0].contains(#""status":"failed""#))
    }

    @Test("a failure the worker calls final is not retried")
    func finalFailure() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.core.failed("w1", taskID: "job-1.s1", retryable: false, reason: "model 'x' is not loaded")
        h.core.credit("w1", slots: 1)
        #expect(h.assignments().isEmpty)
        #expect(h.core.task("job-1.s1")?.attempts == 1)
        #expect(h.core.progressReport(job)?.failures["a"] == "model 'x' is not loaded")
    }

    @Test("a result for a task already committed is ignored, and each image counts once")
    func duplicateResults() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.clock.advance(61)
        h.core.checkLeases()
        h.join("w2")
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-1.s1", kind: .stageOne)])
        // The first worker was slow, not gone: its result lands first, then the second's.
        try h.finishStageOne("job-1.s1", by: "w1")
        try h.finishStageOne("job-1.s1", by: "w2")
        #expect(h.core.jobs[job]?.edits["a"]?.state == .finishing)
        #expect(h.core.task("job-1.a.f1") != nil && h.core.task("job-1.a.f2") == nil)
        h.core.credit("w1", slots: 1)
        h.core.credit("w2", slots: 1)
        let finishes = h.assignments().filter { $0.kind == .finish }
        #expect(finishes.map(\.taskID).sorted() == ["job-1.a.f0", "job-1.a.f1"], "\(finishes)")
        for task in finishes {
            try h.finishImage(task.taskID, by: task.session)
            try h.finishImage(task.taskID, by: task.session)
        }
        let edit = try #require(h.core.jobs[job]?.edits["a"])
        #expect(edit.state == .finished && edit.imagesDone == 2)
        #expect(h.manifest().count == 1 && h.manifest()[0].contains(#""status":"ok""#))
        #expect(FileManager.default.fileExists(atPath: h.output.appendingPathComponent("a/grid.png").path))
    }

    @Test("a worker that leaves gives its tasks back to the queue and to idle workers")
    func workerLeaves() throws {
        let h = try H(packPrompts: 2)
        try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1", credit: 2)
        #expect(h.assignments().map(\.taskID) == ["job-1.s1", "job-1.s2"])
        h.join("w2")
        h.core.workerLeft("w1", reason: "connection closed")
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-1.s1", kind: .stageOne)])
        let status = h.core.status()
        #expect(status.nodes.map(\.id) == ["w2"] && status.queuedTasks == 1 && status.leasedTasks == 1)
        #expect(h.core.task("job-1.s2")?.lastError == "worker w1 left (connection closed)")
    }

    @Test("the status page's view: throughput in 10 s buckets, the time left from the pace so far, departed nodes, failures, results")
    func dashboard() throws {
        let h = try H(packPrompts: 2)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        // 100 s queued with no worker: not counted in the pace.
        h.clock.advance(100)
        h.join("w1")
        var view = h.core.dashboard()
        #expect(view.jobs.first?.imagesTotal == 4 && view.jobs.first?.imagesDone == 0 && view.jobs.first?.eta == nil)
        #expect(view.nodes.map(\.state) == ["busy"])
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"])
        try h.finishStageOne("job-1.s1", by: "w1")
        h.clock.advance(20)
        for image in ["job-1.a.f0", "job-1.a.f1"] {
            h.core.credit("w1", slots: 1)
            #expect(h.nextAssignment(for: "w1")?.taskID == image)
            try h.finishImage(image, by: "w1")
        }
        // "a" (2 images) took 20 s of work; "b" (2 images) has not started: 20 s left.
        view = h.core.dashboard()
        #expect(view.jobs.first?.imagesDone == 2 && view.jobs.first?.eta == 20, "\(String(describing: view.jobs.first))")
        #expect(view.results.map(\.edit) == ["a"] && view.results.first?.thumbnail == "results/\(job)/a/thumbnail.png")
        #expect(h.core.resultGrid(job: job, edit: "a").map { FileManager.default.fileExists(atPath: $0.path) } == true)
        #expect(h.core.resultGrid(job: job, edit: "b") == nil && h.core.resultGrid(job: job, edit: "../a") == nil)

        // w1 leaves: listed as gone with why, its two images in the chart as 12 a minute.
        h.core.workerLeft("w1", reason: "connection reset")
        h.clock.advance(10)
        view = h.core.dashboard()
        let gone = view.nodes.first { $0.id == "w1" }
        #expect(gone?.state == "gone" && gone?.reason == "connection reset" && gone?.history.reduce(0, +) == 12, "\(String(describing: gone))")

        // "b" fails on w2: the failure is listed with its reason, and the job has no time left.
        h.join("w2")
        let next = h.assignments()
        #expect(next.map(\.taskID) == ["job-1.s2"])
        try h.finishStageOne("job-1.s2", by: "w2", failing: ["b"])
        view = h.core.dashboard()
        #expect(view.failures.map(\.edit) == ["b"] && view.failures.first?.reason.isEmpty == false)
        #expect(view.jobs.first?.state == "completed-with-failures" && view.jobs.first?.eta == nil && view.jobs.first?.imagesDone == 4)

        // Ten minutes on, the departed node has left the chart's window.
        // From submission to the last output written ("b" wrote none).
        #expect(view.jobs.first?.duration == 120, "\(String(describing: view.jobs.first))")
        h.clock.advance(600)
        h.core.pruneThroughput()
        #expect(h.core.dashboard().nodes.map(\.id) == ["w2"])
        // A restarted coordinator lists the same latest results, from the journal.
        try h.restart()
        #expect(h.core.dashboard().results.map(\.edit) == ["a"])
    }

    @Test("a restarted core resumes from the journal: unfinished tasks run again, finished ones never")
    func restartFromJournal() throws {
        let h = try H(packPrompts: 2)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        try h.finishStageOne("job-1.s1", by: "w1")
        h.core.credit("w1", slots: 1)
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0"])
        try h.finishImage("job-1.a.f0", by: "w1")
        h.core.credit("w1", slots: 1)
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f1"])
        // The coordinator dies with a.f1 leased.
        try h.restart()
        #expect(h.core.jobs[job]?.edits["a"]?.state == .finishing && h.core.jobs[job]?.edits["a"]?.imagesDone == 1)
        h.join("w9", credit: 5)
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f1", "job-1.s2"])
        try h.finishImage("job-1.a.f1", by: "w9")
        try h.finishStageOne("job-1.s2", by: "w9")
        h.core.credit("w9", slots: 1)
        try h.work("w9")
        #expect(h.core.progressReport(job)?.job.state == "completed")
        #expect(h.manifest().count == 2)
        // A new job after the restart gets a new number.
        #expect(try h.submit([H.edit("c")]) == "job-2")
    }

    @Test("tasks go only to workers serving their model at their precision")
    func capabilities() throws {
        let h = try H()
        try h.submit([H.edit("a"), H.edit("b", precision: .bf16)])
        h.join("fp32-only", models: ["default"], credit: 2)
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"])
        h.join("both", models: ["default", "default@bf16"])
        #expect(h.assignments() == [Assignment(session: "both", taskID: "job-1.s2", kind: .stageOne)])
    }

    @Test("a draining worker finishes what it has and is given nothing more")
    func draining() throws {
        let h = try H(packPrompts: 2)
        try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        h.core.draining("w1")
        try h.finishStageOne("job-1.s1", by: "w1")
        h.core.credit("w1", slots: 1)
        #expect(h.assignments().isEmpty)
        #expect(h.core.status().nodes.first?.state == "draining")
        h.join("w2", credit: 3)
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0", "job-1.a.f1", "job-1.s2"])
    }

    @Test("a stage-1 result missing an edit's latents changes nothing and the task runs again")
    func incompleteResult() throws {
        let h = try H(packPrompts: 4)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        try h.finishStageOne("job-1.s1", by: "w1", omitTensorOf: "b")
        #expect(h.core.jobs[job]?.edits["a"]?.state == .pending && h.core.jobs[job]?.edits["b"]?.state == .pending)
        #expect(h.core.task("job-1.a.f0") == nil)
        h.core.credit("w1", slots: 1)
        #expect(h.assignments() == [Assignment(session: "w1", taskID: "job-1.s1", kind: .stageOne)])
        #expect(h.core.task("job-1.s1")?.attempts == 2)
    }

    @Test("an edit a worker cannot run fails alone; the edits packed with it go on")
    func oneEditFails() throws {
        let h = try H(packPrompts: 4)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        try h.finishStageOne("job-1.s1", by: "w1", failing: ["b"])
        #expect(h.core.jobs[job]?.edits["b"]?.state == .failed && h.core.jobs[job]?.edits["b"]?.error == "no such word")
        h.core.credit("w1", slots: 1)
        try h.work("w1")
        #expect(h.core.jobs[job]?.edits["a"]?.state == .finished)
        #expect(h.core.task("job-1.b.f0") == nil)
        #expect(h.core.progressReport(job)?.job.state == "completed-with-failures")
    }

    @Test("submissions are refused with the reason: repeated ids, relative output folders, no edits")
    func refusedSubmissions() throws {
        let h = try H()
        #expect(throws: SubmissionError.self) { try h.submit([H.edit("a"), H.edit("a")]) }
        #expect(throws: SubmissionError.self) { try h.core.submit([H.edit("a")], output: "relative/out") }
        #expect(throws: SubmissionError.self) { try h.submit([]) }
        #expect(h.core.jobs.isEmpty)
        // Nothing was journalled: the next job is still the first.
        #expect(try h.submit([H.edit("a")]) == "job-1")
    }

    @Test("images of one edit that differ in size fail that edit, and a restart replays it without harm")
    func mismatchedImages() throws {
        let h = try H()
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        try h.finishStageOne("job-1.s1", by: "w1")
        h.core.credit("w1", slots: 1)
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0"])
        try h.finishImage("job-1.a.f0", by: "w1", height: 8)
        h.core.credit("w1", slots: 1)
        _ = h.assignments()
        try h.finishImage("job-1.a.f1", by: "w1", height: 16)
        let edit = try #require(h.core.jobs[job]?.edits["a"])
        #expect(edit.state == .failed && (edit.error ?? "").contains("differ in size"), "\(edit.error ?? "")")
        try h.restart()
        #expect(h.core.jobs[job]?.edits["a"]?.state == .failed)
        h.join("w2", credit: 4)
        try h.work("w2")
        #expect(h.core.jobs[job]?.edits["b"]?.state == .finished)
    }

    @Test("a second job into the same folder adds its lines to the manifest; a clash or a foreign manifest is refused")
    func sharedOutputFolder() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1", credit: 4)
        try h.work("w1")
        try h.submit([H.edit("b")])
        h.core.credit("w1", slots: 1)
        try h.work("w1")
        h.core.flushManifests()
        let lines = h.manifest()
        #expect(lines.count == 2 && lines[0].contains(#""id":"a""#) && lines[0].contains(#""job":"job-1""#)
                && lines[1].contains(#""id":"b""#) && lines[1].contains(#""job":"job-2""#), "\(lines)")
        // The same edit id again would overwrite a's folder.
        #expect(throws: SubmissionError.self) { try h.submit([H.edit("a")]) }
        // A folder holding a manifest of jobs this coordinator does not know.
        let foreign = h.folder.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data("{\"id\": \"x\", \"job\": \"job-1\"}\n".utf8).write(to: foreign.appendingPathComponent("manifest.jsonl"))
        #expect(throws: SubmissionError.self) { try h.core.submit([H.edit("c")], output: foreign.path) }
        // A restart keeps both jobs in the one manifest.
        try h.restart()
        #expect(h.manifest().count == 2)
    }

    @Test("edits for a model no worker serves say why at once, fail with that reason after the wait, and run if a worker comes in time")
    func unservedModels() throws {
        let h = try H(unservedTimeout: 120)
        h.join("fp32", models: ["default"], credit: 0)
        let job = try h.submit([H.edit("a", precision: .bf16), H.edit("b")])
        let report = try #require(h.core.progressReport(job))
        #expect(report.waiting.keys.sorted() == ["a"] && report.waiting["a"]?.hasPrefix("no connected worker serves model 'default' at bf16") == true,
                "\(report.waiting)")
        #expect(h.core.status().unserved.keys.sorted() == ["default@bf16"])
        h.clock.advance(119)
        h.core.checkUnserved()
        #expect(h.core.jobs[job]?.edits["a"]?.state == .pending)
        h.clock.advance(2)
        h.core.checkUnserved()
        let failed = try #require(h.core.jobs[job]?.edits["a"])
        #expect(failed.state == .failed && (failed.error ?? "").contains("no connected worker serves model 'default' at bf16 (waited 120 s)"),
                "\(failed.error ?? "")")
        #expect(h.core.jobs[job]?.edits["b"]?.state == .pending && h.core.status().unserved.isEmpty)
        // A second job: a worker serving it arrives within the wait.
        let second = try h.submit([H.edit("c", precision: .bf16)])
        #expect(h.core.progressReport(second)?.waiting["c"] != nil)
        h.clock.advance(60)
        h.join("bf16", models: ["default@bf16"])
        h.core.checkUnserved()
        #expect(h.core.progressReport(second)?.waiting.isEmpty == true && h.core.status().unserved.isEmpty)
        h.clock.advance(120)
        h.core.checkUnserved()
        #expect(h.core.jobs[second]?.edits["c"]?.state == .pending && h.core.task("job-2.s1")?.state == .leased)
    }
}
