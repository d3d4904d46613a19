import Coordinator
import EditContract
import Foundation
import Testing
import Wire

/// The coordinator's rules, on the broker alone: a manual clock, storage in memory, no process,
/// no socket. Workers are played by the harness.
@Suite("broker: packing, ordering, leases, retries, membership, restart")
struct BrokerTests {
    typealias H = BrokerHarness

    @Test("edits are packed into stage-1 tasks while their prompts fit and their settings agree")
    func packing() throws {
        let h = try H(packPrompts: 4)
        try h.submit([H.edit("a"), H.edit("b"), H.edit("c"), H.edit("d", steps: 10), H.edit("e"), H.edit("f", targets: 4), H.edit("g")])
        let groups = (1...7).map { h.broker.task("job-1.s\($0)")?.edits ?? [] }
        #expect(groups == [["a", "b"], ["c"], ["d"], ["e"], ["f"], ["g"], []], "\(groups)")
        #expect(h.broker.task("job-1.s1")?.kind == .stageOne)
    }

    @Test("a finished stage 1's images go out before another edit's stage 1 starts")
    func finishingBeforeStarting() throws {
        let h = try H(packPrompts: 2)
        try h.submit([H.edit("a"), H.edit("b"), H.edit("c")])
        h.join("w1")
        #expect(h.assignments() == [Assignment(session: "w1", taskID: "job-1.s1", kind: .stageOne)])
        h.finishStageOne("job-1.s1", by: "w1")
        var order: [String] = []
        for _ in 0..<3 {
            h.credit("w1")
            guard let next = h.nextAssignment(for: "w1") else { break }
            order.append(next.taskID)
            if next.kind == .finish { h.finishImage(next.taskID, by: "w1") } else { h.finishStageOne(next.taskID, by: "w1") }
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
        h.tick(59)
        #expect(h.assignments().isEmpty, "the lease expired early")
        h.tick(2)
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-1.s1", kind: .stageOne)])
        #expect(h.broker.task("job-1.s1")?.worker == "w2" && h.broker.task("job-1.s1")?.attempts == 2)
    }

    @Test("heartbeats and progress keep a lease alive")
    func heartbeatsRenewLeases() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.clock.advance(50)
        h.run { $0.heartbeat("w1", taskIDs: ["job-1.s1"]) }
        h.clock.advance(50)
        h.run { $0.progress("w1", taskID: "job-1.s1", step: 3, total: 20) }
        h.tick(50)
        #expect(h.broker.task("job-1.s1")?.state == .leased && h.broker.task("job-1.s1")?.attempts == 1)
        #expect(h.broker.status().nodes.first?.task == "job-1.s1 3/20")
        h.tick(11)
        #expect(h.broker.task("job-1.s1")?.state == .queued && h.broker.status().queuedTasks == 1)
    }

    @Test("a task that keeps failing fails its edits after the attempt cap, with the last reason")
    func retryCap() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        var attempts = 0
        while let next = h.nextAssignment(for: "w1") {
            attempts += 1
            h.fail(next.taskID, by: "w1", retryable: true, reason: "out of memory")
            h.credit("w1")
        }
        #expect(attempts == 3)
        #expect(h.broker.task("job-1.s1")?.state == .failed)
        let report = try #require(h.broker.progressReport(job))
        #expect(report.failures["a"] == "failed 3 times; last: out of memory")
        #expect(report.job.state == "completed-with-failures")
        h.tick()
        #expect(h.manifest().count == 1 && h.manifest()[0].contains(#""status":"failed""#))
    }

    @Test("a failure the worker calls final is not retried")
    func finalFailure() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.fail("job-1.s1", by: "w1", retryable: false, reason: "model 'x' is not loaded")
        h.credit("w1")
        #expect(h.assignments().isEmpty)
        #expect(h.broker.task("job-1.s1")?.attempts == 1)
        #expect(h.broker.progressReport(job)?.failures["a"] == "model 'x' is not loaded")
    }

    @Test("a result for a task already committed is ignored, and each image counts once")
    func duplicateResults() throws {
        let h = try H()
        let job = try h.submit([H.edit("a")])
        h.join("w1")
        _ = h.assignments()
        h.tick(61)
        h.join("w2")
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-1.s1", kind: .stageOne)])
        // The first worker was slow, not gone: its result lands first, then the second's.
        h.finishStageOne("job-1.s1", by: "w1")
        h.finishStageOne("job-1.s1", by: "w2")
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .finishing)
        #expect(h.broker.task("job-1.a.f1") != nil && h.broker.task("job-1.a.f2") == nil)
        h.credit("w1")
        h.credit("w2")
        let finishes = h.assignments().filter { $0.kind == .finish }
        #expect(finishes.map(\.taskID).sorted() == ["job-1.a.f0", "job-1.a.f1"], "\(finishes)")
        for task in finishes {
            h.finishImage(task.taskID, by: task.session)
            h.finishImage(task.taskID, by: task.session)
        }
        let edit = try #require(h.broker.jobs[job]?.edits["a"])
        #expect(edit.state == .finished && edit.imagesDone == 2)
        #expect(h.manifest().count == 1 && h.manifest()[0].contains(#""status":"ok""#))
        #expect(h.picturesWritten("a"))
    }

    @Test("a worker that leaves gives its tasks back to the queue and to idle workers")
    func workerLeaves() throws {
        let h = try H(packPrompts: 2)
        try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1", credit: 2)
        #expect(h.assignments().map(\.taskID) == ["job-1.s1", "job-1.s2"])
        h.join("w2")
        h.run { $0.workerLeft("w1", reason: "connection closed") }
        #expect(h.assignments() == [Assignment(session: "w2", taskID: "job-1.s1", kind: .stageOne)])
        let status = h.broker.status()
        #expect(status.nodes.map(\.id) == ["w2"] && status.queuedTasks == 1 && status.leasedTasks == 1)
        #expect(h.broker.task("job-1.s2")?.lastError == "worker w1 left (connection closed)")
    }

    @Test("the status page's view: throughput in 10 s buckets, the time left from the pace so far, departed nodes, failures, results")
    func dashboard() throws {
        let h = try H(packPrompts: 2)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        // 100 s queued with no worker: not counted in the pace.
        h.clock.advance(100)
        h.join("w1")
        var view = h.dashboard
        #expect(view.jobs.first?.imagesTotal == 4 && view.jobs.first?.imagesDone == 0 && view.jobs.first?.eta == nil)
        #expect(view.nodes.map(\.state) == ["busy"])
        #expect(h.assignments().map(\.taskID) == ["job-1.s1"])
        h.finishStageOne("job-1.s1", by: "w1")
        h.clock.advance(20)
        for image in ["job-1.a.f0", "job-1.a.f1"] {
            h.credit("w1")
            #expect(h.nextAssignment(for: "w1")?.taskID == image)
            h.finishImage(image, by: "w1")
        }
        // "a" (2 images) took 20 s of work; "b" (2 images) has not started: 20 s left.
        view = h.dashboard
        #expect(view.jobs.first?.imagesDone == 2 && view.jobs.first?.eta == 20, "\(String(describing: view.jobs.first))")
        #expect(view.results.map(\.edit) == ["a"] && view.results.first?.thumbnail == "results/\(job)/a/thumbnail.png")
        #expect(h.broker.resultGrid(job: job, edit: "a")?.path == h.output.appendingPathComponent("a/grid.png").path)
        #expect(h.broker.resultGrid(job: job, edit: "b") == nil && h.broker.resultGrid(job: job, edit: "../a") == nil)

        // w1 leaves: listed as gone with why, its two images in the chart as 12 a minute.
        h.run { $0.workerLeft("w1", reason: "connection reset") }
        h.clock.advance(10)
        view = h.dashboard
        let gone = view.nodes.first { $0.id == "w1" }
        #expect(gone?.state == "gone" && gone?.reason == "connection reset" && gone?.history.reduce(0, +) == 12, "\(String(describing: gone))")

        // "b" fails on w2: the failure is listed with its reason, and the job has no time left.
        h.join("w2")
        let next = h.assignments()
        #expect(next.map(\.taskID) == ["job-1.s2"])
        h.finishStageOne("job-1.s2", by: "w2", failing: ["b"])
        view = h.dashboard
        #expect(view.failures.map(\.edit) == ["b"] && view.failures.first?.reason.isEmpty == false)
        #expect(view.jobs.first?.state == "completed-with-failures" && view.jobs.first?.eta == nil && view.jobs.first?.imagesDone == 4)

        // Ten minutes on, the departed node has left the chart's window.
        // From submission to the last output written ("b" wrote none).
        #expect(view.jobs.first?.duration == 120, "\(String(describing: view.jobs.first))")
        h.tick(600)
        #expect(h.dashboard.nodes.map(\.id) == ["w2"])
        // A restarted coordinator lists the same latest results, from the journal.
        try h.restart()
        #expect(h.dashboard.results.map(\.edit) == ["a"])
    }

    @Test("a restarted core resumes from the journal: unfinished tasks run again, finished ones never")
    func restartFromJournal() throws {
        let h = try H(packPrompts: 2)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        h.finishStageOne("job-1.s1", by: "w1")
        h.credit("w1")
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0"])
        h.finishImage("job-1.a.f0", by: "w1")
        h.credit("w1")
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f1"])
        // The coordinator dies with a.f1 leased.
        try h.restart()
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .finishing && h.broker.jobs[job]?.edits["a"]?.imagesDone == 1)
        h.join("w9", credit: 5)
        // (A finish task goes out once its input is read, after the stage-1 task assigned with it.)
        #expect(h.assignments().map(\.taskID).sorted() == ["job-1.a.f1", "job-1.s2"])
        h.finishImage("job-1.a.f1", by: "w9")
        h.finishStageOne("job-1.s2", by: "w9")
        h.credit("w9")
        h.work("w9")
        #expect(h.broker.progressReport(job)?.job.state == "completed")
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
        h.run { $0.draining("w1") }
        h.finishStageOne("job-1.s1", by: "w1")
        h.credit("w1")
        #expect(h.assignments().isEmpty)
        #expect(h.broker.status().nodes.first?.state == "draining")
        h.join("w2", credit: 3)
        #expect(h.assignments().map(\.taskID).sorted() == ["job-1.a.f0", "job-1.a.f1", "job-1.s2"])
    }

    @Test("a stage-1 result missing an edit's latents changes nothing and the task runs again")
    func incompleteResult() throws {
        let h = try H(packPrompts: 4)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        h.finishStageOne("job-1.s1", by: "w1", omitting: "b")
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .pending && h.broker.jobs[job]?.edits["b"]?.state == .pending)
        #expect(h.broker.task("job-1.a.f0") == nil)
        h.credit("w1")
        #expect(h.assignments() == [Assignment(session: "w1", taskID: "job-1.s1", kind: .stageOne)])
        #expect(h.broker.task("job-1.s1")?.attempts == 2)
    }

    @Test("an edit a worker cannot run fails alone; the edits packed with it go on")
    func oneEditFails() throws {
        let h = try H(packPrompts: 4)
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        h.finishStageOne("job-1.s1", by: "w1", failing: ["b"])
        #expect(h.broker.jobs[job]?.edits["b"]?.state == .failed && h.broker.jobs[job]?.edits["b"]?.error == "no such word")
        h.credit("w1")
        h.work("w1")
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .finished)
        #expect(h.broker.task("job-1.b.f0") == nil)
        #expect(h.broker.progressReport(job)?.job.state == "completed-with-failures")
    }

    @Test("submissions are refused with the reason: repeated ids, relative output folders, no edits")
    func refusedSubmissions() throws {
        let h = try H()
        #expect(throws: SubmissionError.self) { try h.submit([H.edit("a"), H.edit("a")]) }
        #expect(throws: SubmissionError.self) { try h.broker.submit([H.edit("a")], output: "relative/out") }
        #expect(throws: SubmissionError.self) { try h.submit([]) }
        #expect(h.broker.jobs.isEmpty)
        // Nothing was journalled: the next job is still the first.
        #expect(try h.submit([H.edit("a")]) == "job-1")
    }

    @Test("images of one edit that differ in size fail that edit, and a restart replays it without harm")
    func mismatchedImages() throws {
        let h = try H()
        let job = try h.submit([H.edit("a"), H.edit("b")])
        h.join("w1")
        _ = h.assignments()
        h.finishStageOne("job-1.s1", by: "w1")
        h.credit("w1")
        #expect(h.assignments().map(\.taskID) == ["job-1.a.f0"])
        h.finishImage("job-1.a.f0", by: "w1", height: 8)
        h.credit("w1")
        _ = h.assignments()
        h.finishImage("job-1.a.f1", by: "w1", height: 16)
        let edit = try #require(h.broker.jobs[job]?.edits["a"])
        #expect(edit.state == .failed && (edit.error ?? "").contains("differ in size"), "\(edit.error ?? "")")
        try h.restart()
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .failed)
        h.join("w2", credit: 4)
        h.work("w2")
        #expect(h.broker.jobs[job]?.edits["b"]?.state == .finished)
    }

    @Test("a second job into the same folder adds its lines to the manifest; a clash or a foreign manifest is refused")
    func sharedOutputFolder() throws {
        let h = try H()
        try h.submit([H.edit("a")])
        h.join("w1", credit: 4)
        h.work("w1")
        try h.submit([H.edit("b")])
        h.credit("w1")
        h.work("w1")
        h.tick()
        let lines = h.manifest()
        #expect(lines.count == 2 && lines[0].contains(#""id":"a""#) && lines[0].contains(#""job":"job-1""#)
                && lines[1].contains(#""id":"b""#) && lines[1].contains(#""job":"job-2""#), "\(lines)")
        // The same edit id again would overwrite a's folder.
        #expect(throws: SubmissionError.self) { try h.submit([H.edit("a")]) }
        // A folder holding a manifest of jobs this coordinator does not know.
        let foreign = h.folder.appendingPathComponent("foreign")
        try h.memoryStore?.writeManifest([], to: foreign)
        let refused = try h.submit([H.edit("c")], output: foreign)
        #expect(h.broker.jobs[refused] == nil && h.refusals[refused]?.contains("holds a manifest.jsonl of jobs this coordinator does not know") == true,
                "\(h.refusals)")
        // A restart keeps both jobs in the one manifest.
        try h.restart()
        #expect(h.manifest().count == 2)
    }

    @Test("edits for a model no worker serves say why at once, fail with that reason after the wait, and run if a worker comes in time")
    func unservedModels() throws {
        let h = try H(unservedTimeout: 120)
        h.join("fp32", models: ["default"], credit: 0)
        let job = try h.submit([H.edit("a", precision: .bf16), H.edit("b")])
        let report = try #require(h.broker.progressReport(job))
        #expect(report.waiting.keys.sorted() == ["a"] && report.waiting["a"]?.hasPrefix("no connected worker serves model 'default' at bf16") == true,
                "\(report.waiting)")
        #expect(h.broker.status().unserved.keys.sorted() == ["default@bf16"])
        h.tick(119)
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .pending)
        h.tick(2)
        let failed = try #require(h.broker.jobs[job]?.edits["a"])
        #expect(failed.state == .failed && (failed.error ?? "").contains("no connected worker serves model 'default' at bf16 (waited 120 s)"),
                "\(failed.error ?? "")")
        #expect(h.broker.jobs[job]?.edits["b"]?.state == .pending && h.broker.status().unserved.isEmpty)
        // A second job: a worker serving it arrives within the wait.
        let second = try h.submit([H.edit("c", precision: .bf16)])
        #expect(h.broker.progressReport(second)?.waiting["c"] != nil)
        h.clock.advance(60)
        h.join("bf16", models: ["default@bf16"])
        h.tick()
        #expect(h.broker.progressReport(second)?.waiting.isEmpty == true && h.broker.status().unserved.isEmpty)
        h.clock.advance(120)
        h.run { $0.checkUnserved() }
        #expect(h.broker.jobs[second]?.edits["c"]?.state == .pending && h.broker.task("job-2.s1")?.state == .leased)
    }
}
