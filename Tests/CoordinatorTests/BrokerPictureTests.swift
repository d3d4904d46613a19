@testable import Coordinator
import EditContract
import Foundation
import Testing
import Wire

/// Pictures carried with batches: kept once before the jobs that name them, checked on
/// arrival, sent with their stage-1 tasks, and routed to the worker that inverted them last.
@Suite("broker: pictures carried with batches")
struct BrokerPictureTests {
    typealias H = BrokerHarness

    /// A PNG's first bytes and some more: enough for the coordinator's checks.
    static func picture(_ fill: UInt8) -> CarriedPicture {
        CarriedPicture(bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: fill, count: 100))
    }

    static func edit(_ id: String, picture: CarriedPicture, source: String = "a red circle") -> EditEnvelope {
        var spec = EditSpec(id: id, source: source, targets: ["a red square"])
        (spec.image, spec.imageSHA256) = ("\(id).png", picture.digest)
        return try! EditEnvelope(spec)
    }

    func keep(_ picture: CarriedPicture, in h: H) throws {
        try h.broker.pictureArrived(picture)
        h.drive()
    }

    @Test("a picture is kept once checked; a job naming one never sent, or one whose bytes lie, is refused; a job's pictures are bounded")
    func arrivalAndRefusals() throws {
        let h = try H()
        let (a, b) = (Self.picture(1), Self.picture(2))
        #expect(h.broker.missingPictures([a.digest, b.digest, a.digest]) == [a.digest, b.digest])
        // Named but never sent: refused before anything is journaled.
        let unsent = #expect(throws: SubmissionError.self) { try h.submit([Self.edit("e", picture: a)]) }
        #expect(unsent?.description.contains("was not sent") == true, "\(String(describing: unsent))")
        // Bytes that are not what the digest names, or not a picture at all: checked in storage
        // (off the event loop), not kept.
        try keep(CarriedPicture(digest: b.digest, bytes: a.bytes), in: h)
        let gif = CarriedPicture(bytes: Array("GIF89a...".utf8))
        try keep(gif, in: h)
        #expect(h.broker.missingPictures([a.digest, b.digest, gif.digest]) == [a.digest, b.digest, gif.digest])
        #expect(try h.memoryStore?.carriedPictures().isEmpty == true)
        // Over the size limit: refused at once.
        var small = BrokerSettings()
        small.maximumPictureBytes = 50
        let strict = TaskBroker(nextJobNumber: 1, metrics: CoordinatorMetrics(), logger: .init(label: "test"), settings: small)
        #expect(throws: SubmissionError.self) { try strict.pictureArrived(a) }
        try keep(a, in: h)
        #expect(h.broker.missingPictures([a.digest, b.digest]) == [b.digest])
        #expect(try h.memoryStore?.carriedPicture(a.digest) == a)
        try h.submit([Self.edit("e", picture: a)])

        small = BrokerSettings()
        small.maximumPictureBytesPerJob = 150
        let bounded = TaskBroker(nextJobNumber: 1, metrics: CoordinatorMetrics(), logger: .init(label: "test"), settings: small)
        bounded.restorePictures([a.digest: a.bytes.count, b.digest: b.bytes.count])
        #expect(throws: SubmissionError.self) { try bounded.submit([Self.edit("x", picture: a), Self.edit("y", picture: b)], output: "/tmp/out") }
        _ = try bounded.submit([Self.edit("x", picture: a), Self.edit("y", picture: a)], output: "/tmp/out")
    }

    @Test("a stage-1 task goes out with its picture once it is read, its lease starting then; edits of one picture share a task")
    func sentWithTheTask() throws {
        let h = try H()
        let (a, b) = (Self.picture(1), Self.picture(2))
        try keep(a, in: h)
        try keep(b, in: h)
        try h.submit([Self.edit("a1", picture: a), Self.edit("a2", picture: a), Self.edit("b1", picture: b), H.edit("plain")])
        h.join("w1", credit: 3)
        var works: [String: TaskWork] = [:]
        while let (assignment, work) = h.nextWork(for: "w1") { works[assignment.taskID] = work }
        #expect(works.count == 3, "\(works.keys.sorted())")
        for (_, work) in works {
            guard case .stageOne(let edits, let pictures) = work else { Issue.record("not stage 1: \(work)"); continue }
            let digests = Set(edits.compactMap(\.picture))
            #expect(digests.count <= 1, "one task, several pictures: \(edits.map(\.id))")
            #expect(pictures.map(\.digest) == Array(digests), "\(edits.map(\.id)) carried \(pictures.map { $0.digest.prefix(8) })")
            #expect(pictures.allSatisfy { $0.isIntact })
        }
        let ids = works.values.compactMap { work -> [String]? in if case .stageOne(let edits, _) = work { return edits.map(\.id) } else { return nil } }
        #expect(Set(ids) == [["a1", "a2"], ["b1"], ["plain"]])
    }

    @Test("the worker that inverted a picture is offered its next edits first; others still get work")
    func affinity() throws {
        let h = try H(packPrompts: 2)
        let (a, b) = (Self.picture(1), Self.picture(2))
        try keep(a, in: h)
        try keep(b, in: h)
        // One edit per task (2 prompts each): a1, b1 first, then a2 and b2.
        try h.submit([Self.edit("a1", picture: a), Self.edit("b1", picture: b)])
        h.join("w1")
        h.join("w2")
        let first = [h.nextWork(for: "w1"), h.nextWork(for: "w2")].compactMap { $0 }
        #expect(first.count == 2)
        func task(_ work: (Assignment, TaskWork)) -> String {
            if case .stageOne(let edits, _) = work.1 { return edits.first?.picture ?? "" } else { return "" }
        }
        let holder = Dictionary(uniqueKeysWithValues: first.map { (task($0), $0.0.session) })
        for work in first {
            h.finishStageOne(work.0.taskID, by: work.0.session)
            h.credit(work.0.session)
        }
        // Both finish the first job's images and wait, idle.
        h.work("w1")
        h.work("w2")
        #expect(h.broker.jobs["job-1"]?.isComplete == true)
        // The next job's edits of each picture go to the worker that had it, whatever their order.
        try h.submit([Self.edit("b2", picture: b), Self.edit("a2", picture: a)], output: h.output.appendingPathComponent("second"))
        for session in ["w1", "w2"] {
            guard let work = h.nextWork(for: session) else { Issue.record("\(session) got nothing"); continue }
            #expect(holder[task(work)] == session, "\(session) got the picture \(holder[task(work)] ?? "?") inverted")
        }
    }
}
