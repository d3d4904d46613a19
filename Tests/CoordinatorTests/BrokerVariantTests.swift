@testable import Coordinator
import EditContract
import Foundation
import Testing
import Wire

/// Sampled lines on the broker alone: lazy expansion, the kept set, staging, restarts,
/// duplicates and failures.
@Suite("broker: sampled lines and their variants")
struct BrokerVariantTests {
    typealias H = BrokerHarness

    /// The kept variants of a finished line, from its manifest (index order).
    static func kept(_ manifest: [String], line: String) throws -> [Int] {
        try manifest.compactMap { text -> Int? in
            let object = try #require(StrictJSON.parse(text).objectValue)
            guard object["id"]?.stringValue == line, object["status"]?.stringValue == "kept" else { return nil }
            return object["variant"]?.intValue
        }.sorted()
    }

    @Test("a job of 100-variant lines makes no task until workers ask, and counts its variants as queued")
    func lazyExpansion() throws {
        let h = try H()
        try h.submit((0..<50).map { H.line("l\($0)", samples: 100, keep: 4) })
        #expect(h.broker.tasks.isEmpty, "\(h.broker.tasks.count) tasks made before any worker asked")
        #expect(h.broker.status().queuedTasks == 5000)
        h.join("w1", models: [H.lineCapability], credit: 3)
        let handed = h.assignments()
        #expect(handed.map(\.taskID) == ["job-1.l0.v0", "job-1.l0.v1", "job-1.l0.v2"], "\(handed)")
        #expect(handed.allSatisfy { $0.kind == .variants })
        #expect(h.broker.tasks.count == 3)
        #expect(h.broker.status().queuedTasks == 4997 && h.broker.status().leasedTasks == 3)
    }

    @Test("a line keeps the best K by directional similarity among those the filter passes; only kept pictures are written")
    func keepsTheBest() throws {
        let h = try H()
        let filter = ScoreFilter(text: 0.2, direction: -0.3, image: 0.7)
        try h.submit([H.line("a", samples: 12, keep: 3, filter: filter), H.line("b", samples: 5, keep: 2, filter: filter, seed: 9)])
        h.join("w1", models: [H.lineCapability])
        h.work("w1")
        /// The recipe's rule, on the harness's scores: passing, by (direction, seed) descending.
        func best(seed: UInt64, samples: Int, keep: Int) -> (kept: [Int], passing: Int) {
            let seeds = VariantDraw.seeds(lineSeed: seed, count: samples)
            let passing = seeds.indices.filter { H.direction(of: seeds[$0]) >= -0.3 }
            let sorted = passing.sorted { (H.direction(of: seeds[$0]), seeds[$0]) > (H.direction(of: seeds[$1]), seeds[$1]) }
            return (Array(sorted.prefix(keep)).sorted(), passing.count)
        }
        let (expected, passing) = best(seed: 1, samples: 12, keep: 3)
        let (expectedB, _) = best(seed: 9, samples: 5, keep: 2)
        let seeds = VariantDraw.seeds(lineSeed: 1, count: 12)
        let manifest = h.manifest()
        #expect(try Self.kept(manifest, line: "a") == expected)
        #expect(try Self.kept(manifest, line: "b") == expectedB)
        #expect(manifest.count == 2 + 12 + 5, "a line's own line, then one per variant")
        let written = h.memoryStore?.writtenPictures.keys.filter { $0.contains("/a/") }.sorted() ?? []
        #expect(written == expected.map { h.output.appendingPathComponent("a").appendingPathComponent("\(seeds[$0])").path }.sorted())
        #expect(h.memoryStore?.tensorCount == 0, "staged pictures are forgotten once their line is written")
        let status = try #require(h.broker.status().jobs.first)
        #expect(status.state == "completed" && status.variants?.done == 17 && status.variants?.kept == expected.count + expectedB.count)
        let rejectedByFilter = 12 - passing
        #expect(status.variants?.rejected["clip_direction", default: 0] ?? 0 >= rejectedByFilter)
    }

    @Test("the kept set does not depend on the order results arrive in, and only pictures that may be kept are staged")
    func orderIndependence() throws {
        var keptSets: [[Int]] = []
        var staged: [Int] = []
        for reversed in [false, true] {
            let h = try H()
            try h.submit([H.line("a", samples: 10, keep: 2)])
            h.join("w1", models: [H.lineCapability], credit: 10)
            var work: [(Assignment, TaskWork)] = []
            while let next = h.nextWork(for: "w1") { work.append(next) }
            #expect(work.count == 10)
            // Directions rising with the index: in order, each result is the best so far.
            for item in reversed ? work.reversed() : work {
                guard case .variant(let variant) = item.1 else { continue }
                h.finishVariant(item, direction: Double(variant.index) / 10)
            }
            keptSets.append(try Self.kept(h.manifest(), line: "a"))
            staged.append(h.requests.filter { if case .commitVariant(_, _, _, _, let pictures, _) = $0 { return !pictures.isEmpty } else { return false } }.count)
        }
        #expect(keptSets[0] == [8, 9] && keptSets[1] == [8, 9])
        #expect(staged == [10, 2], "rising: every result may be kept when it arrives; falling: only the first two")
    }

    @Test("a restarted broker runs only the variants not yet in and ends with the same kept set")
    func restart() throws {
        let uninterrupted = try H(durable: true)
        try uninterrupted.submit([H.line("a", samples: 8, keep: 3)])
        uninterrupted.join("w1", models: [H.lineCapability])
        uninterrupted.work("w1")
        let expected = try Self.kept(uninterrupted.manifest(), line: "a")

        let h = try H(durable: true)
        try h.submit([H.line("a", samples: 8, keep: 3)])
        h.join("w1", models: [H.lineCapability], credit: 5)
        var done = 0
        while done < 5, let next = h.nextWork(for: "w1") {
            h.finishVariant(next)
            done += 1
        }
        try h.restart()
        h.join("w2", models: [H.lineCapability])
        var ran: [Int] = []
        while let next = h.nextWork(for: "w2") {
            if case .variant(let work) = next.1 { ran.append(work.index) }
            h.finishVariant(next)
            h.credit("w2")
        }
        #expect(ran == [5, 6, 7], "\(ran)")
        #expect(try Self.kept(h.manifest(), line: "a") == expected)
        #expect(h.manifest().count == 9, "the manifest holds the line once: \(h.manifest().count) lines")
    }

    @Test("a variant whose lease expired and ran twice counts once")
    func duplicates() throws {
        let h = try H()
        try h.submit([H.line("a", samples: 2)])
        h.join("w1", models: [H.lineCapability])
        let first = try #require(h.nextWork(for: "w1"))
        h.tick(61)
        h.join("w2", models: [H.lineCapability])
        let again = try #require(h.nextWork(for: "w2"))
        #expect(again.0.taskID == first.0.taskID)
        h.finishVariant(again)
        h.finishVariant(first)
        #expect(h.memoryJournal?.variants(job: "job-1", line: "a").count == 1)
        #expect(h.broker.status().jobs.first?.variants?.done == 1)
    }

    @Test("a variant that cannot run, or fails every attempt, is in as failed; its line still ends")
    func failures() throws {
        let h = try H(maximumAttempts: 2)
        try h.submit([H.line("a", samples: 3, keep: 1)])
        h.join("w1", models: [H.lineCapability])
        let first = try #require(h.nextWork(for: "w1"))
        h.run { $0.result("w1", taskID: first.0.taskID, result: .variant(.failed(reason: "prompt too long"))) }
        h.credit("w1")
        let second = try #require(h.nextWork(for: "w1"))
        h.fail(second.0.taskID, by: "w1", retryable: true, reason: "out of memory")
        h.credit("w1")
        let retried = try #require(h.nextWork(for: "w1"))
        #expect(retried.0.taskID == second.0.taskID)
        h.fail(retried.0.taskID, by: "w1", retryable: true, reason: "out of memory")
        h.credit("w1")
        h.work("w1")
        let status = try #require(h.broker.status().jobs.first)
        #expect(status.state == "completed" && status.variants?.failed == 2 && status.variants?.kept == 1, "\(status)")
        let failures = h.manifest().filter { $0.contains("\"status\":\"failed\"") }
        #expect(failures.count == 2 && failures.contains { $0.contains("prompt too long") } && failures.contains { $0.contains("failed 2 times") })
    }

    @Test("keep_rejected writes every variant's pictures, the rejected ones apart")
    func keepRejected() throws {
        let h = try H()
        try h.submit([H.line("a", samples: 4, keep: 1, keepRejected: true)])
        h.join("w1", models: [H.lineCapability])
        h.work("w1")
        let written = h.memoryStore?.writtenPictures.keys.filter { $0.contains("/a/") } ?? []
        #expect(written.count == 4 && written.filter { $0.hasSuffix("-rejected") }.count == 3)
        let images = h.manifest().filter { $0.contains("rejected/a/") }
        #expect(images.count == 3)
    }

    @Test("a line whose scorer no worker serves waits, then fails with the reason")
    func unservedScorer() throws {
        let h = try H(unservedTimeout: 30)
        try h.submit([H.line("a", samples: 3, scorer: "clip-large")])
        h.join("w1", models: [H.lineCapability])
        #expect(h.assignments().isEmpty)
        h.tick(1)
        let waiting = h.broker.progressReport("job-1")?.waiting["a"] ?? ""
        #expect(waiting.contains("with scorer 'clip-large'"), "\(waiting)")
        h.tick(31)
        let report = try #require(h.broker.progressReport("job-1"))
        #expect(report.job.state == "completed-with-failures" && report.failures["a"]?.contains("scorer 'clip-large'") == true)
        #expect(h.manifest().count == 1 && h.manifest()[0].contains("\"status\":\"failed\""))
    }

    @Test("sampled lines and single edits do not mix in a job or a folder; datasets hold pairs")
    func refusals() throws {
        let h = try H()
        #expect(throws: SubmissionError.self) { try h.submit([H.line("a", samples: 2), H.edit("b")]) }
        #expect(throws: SubmissionError.self) { try h.submit([H.edit("b")], layout: .hf) }
        try h.submit([H.edit("b")])
        #expect(throws: SubmissionError.self) { try h.submit([H.line("a", samples: 2)]) }
        var spec = EditSpec(id: "c", source: "a red circle", targets: ["a red square", "a red triangle"])
        spec.sampling = SamplingPlan(samples: 2, scorer: nil)
        #expect(throws: SubmissionError.self) { try h.submit([try EditEnvelope(spec)], output: h.folder.appendingPathComponent("other"), layout: .instructPix2Pix) }
    }

    @Test("a dataset job's folder-wide files are written once every line ended")
    func datasetFiles() throws {
        let h = try H()
        try h.submit([H.line("a", samples: 2)], layout: .hf)
        h.join("w1", models: [H.lineCapability])
        h.work("w1")
        #expect(h.memoryStore?.datasetFolders == [h.output.path])
        #expect(h.broker.status().jobs.first?.state == "completed")
    }
}
