@testable import Coordinator
import EditContract
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing
import Wire

/// Roles, the output root and the limits, on the coordinator's real connection pipeline.
@Suite("trust boundaries: roles, the output root, limits")
struct TrustBoundaryTests {
    static let workerSecret = SharedSecret(Array("the workers' secret, long enough".utf8))
    static let clientSecret = SharedSecret(Array("the clients' secret, long enough".utf8))
    static let statusSecret = SharedSecret(Array("a read-only secret, long enough!".utf8))

    static func separateRoles(settings: BrokerSettings = BrokerSettings(), outputRoot: OutputRoot? = nil) throws -> PeerPipeline {
        try PeerPipeline(credentials: RoleCredentials(worker: workerSecret, client: clientSecret, status: statusSecret),
                         outputRoot: outputRoot, settings: settings)
    }

    /// The error frame a refused sign-in gets.
    func refusedSignIn(_ p: PeerPipeline, role: PeerRole, secret: SharedSecret) throws -> WireMessage? {
        let channel = try p.connection()
        var handshake = ClientHandshake(secret: secret, role: role, nodeID: "n")
        try p.send(handshake.hello(), to: channel)
        guard case .challenge(let nonce)? = try p.received(channel).first else { return nil }
        try p.send(try handshake.answer(challenge: nonce), to: channel)
        defer { #expect(!channel.isActive, "a refused sign-in stays open") }
        return try p.received(channel).first
    }

    @Test("a worker's secret cannot sign in as a client, a client's not as a worker, the read-only one not as either")
    func secretsAreRoles() throws {
        let p = try Self.separateRoles()
        for (role, secret) in [(PeerRole.client, Self.workerSecret), (.worker, Self.clientSecret), (.client, Self.statusSecret),
                               (.worker, Self.statusSecret), (.monitor, Self.workerSecret)] {
            guard case .error(let code, let reason)? = try refusedSignIn(p, role: role, secret: secret) else {
                Issue.record("\(role) signed in with another role's secret"); continue
            }
            #expect(code == WireError.Code.authenticationFailed.rawValue && reason.contains("wrong \(ServerHandshakeHandler.name(role)) secret"), "\(reason)")
        }
        #expect(p.broker.status().nodes.isEmpty)
        // Each secret signs in its own role; the clients' also reads the status.
        try p.signIn(try p.connection(), role: .worker, node: "w", secret: Self.workerSecret)
        try p.signIn(try p.connection(), role: .client, node: "c", secret: Self.clientSecret)
        try p.signIn(try p.connection(), role: .monitor, node: "s", secret: Self.statusSecret)
        try p.signIn(try p.connection(), role: .monitor, node: "s2", secret: Self.clientSecret)
        #expect(p.broker.status().nodes.map(\.id) == ["w"])
    }

    @Test("a signed-in worker cannot submit, watch, read the status or send pictures; the read-only credential cannot submit")
    func rolesLimitMessages() throws {
        let p = try Self.separateRoles()
        let client = try p.connection()
        try p.signIn(client, role: .client, node: "c", secret: Self.clientSecret)
        try p.send(.submit(outputDirectory: "/results", layout: .ptp, edits: [PeerPipeline.edit("a")]), to: client)
        #expect(try p.received(client) == [.accepted(jobID: "job-1", edits: 1, output: "/results")])
        let forbidden: [WireMessage] = [.watch(jobID: "job-1"), .statusRequest, .submit(outputDirectory: "/elsewhere", layout: .ptp, edits: [PeerPipeline.edit("b")]),
                                        .pictureQuery(digests: [String(repeating: "ab", count: 32)])]
        for message in forbidden {
            let worker = try p.connection()
            try p.signIn(worker, role: .worker, node: "w", secret: Self.workerSecret)
            try p.send(message, to: worker)
            guard case .error(let code, let reason)? = try p.received(worker).first else { Issue.record("a worker's '\(message.name)' was answered"); continue }
            #expect(code == WireError.Code.forbidden.rawValue && reason.contains("a worker credential cannot '\(message.name)'"), "\(reason)")
            #expect(!worker.isActive)
        }
        let status = try p.connection()
        try p.signIn(status, role: .monitor, node: "s", secret: Self.statusSecret)
        try p.send(.watch(jobID: "job-1"), to: status)
        guard case .jobProgress? = try p.received(status).first else { Issue.record("the read-only credential cannot watch"); return }
        try p.send(.submit(outputDirectory: "/results", layout: .ptp, edits: [PeerPipeline.edit("c")]), to: status)
        guard case .error(let code, let reason)? = try p.received(status).first else { Issue.record("a status credential submitted"); return }
        #expect(code == WireError.Code.forbidden.rawValue && reason.contains("read-only"), "\(reason)")
        #expect(p.broker.jobs.count == 1)
    }

    @Test("--output-root: relative and inner paths land under it; an absolute path outside, '..' and a symbolic link out are refused with the fix")
    func outputRoot() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-root-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        let rootFolder = base.appendingPathComponent("outputs")
        let outside = base.appendingPathComponent("private")
        try FileManager.default.createDirectory(at: rootFolder.appendingPathComponent("inner"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: rootFolder.appendingPathComponent("escape"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(at: rootFolder.appendingPathComponent("alias"), withDestinationURL: rootFolder.appendingPathComponent("inner"))
        // A link to nothing yet: following it would create its target outside.
        try FileManager.default.createSymbolicLink(at: rootFolder.appendingPathComponent("dangling"), withDestinationURL: outside.appendingPathComponent("new"))
        // The root reached through a link of its own.
        let viaLink = base.appendingPathComponent("outputs-link")
        try FileManager.default.createSymbolicLink(at: viaLink, withDestinationURL: rootFolder)
        let root = try OutputRoot(rootFolder.path)

        #expect(try root.resolve("run-1").path == root.path + "/run-1")
        #expect(try root.resolve(root.path + "/inner/run-2").path == root.path + "/inner/run-2")
        #expect(try root.resolve("alias/run-3").path == root.path + "/inner/run-3", "a link that stays inside is followed")
        let linked = try OutputRoot(viaLink.path)
        #expect(try linked.resolve(viaLink.path + "/run-4").path == root.path + "/run-4", "a root given through a link takes paths under either name")
        let escapes = [(outside.path + "/run", "outside this coordinator's output root"), ("/etc/ptp", "outside this coordinator's output root"),
                       ("../private/run", "'..'"), ("inner/../../private", "'..'"), ("escape/run", "symbolic link"), ("escape", "symbolic link"),
                       ("dangling", "symbolic link to nothing"), ("dangling/run", "symbolic link to nothing"),
                       (String(repeating: "deep/", count: 900), "over 4096")]
        for (path, why) in escapes {
            #expect(throws: SubmissionError.self, "\(path) was accepted") { try root.resolve(path) }
            do { _ = try root.resolve(path) } catch {
                #expect("\(error)".contains(why) && ("\(error)".contains("give a folder under \(root.path)") || why == "over 4096"), "\(error)")
            }
        }
        #expect(throws: SubmissionError.self) { try OutputRoot(base.appendingPathComponent("missing").path) }

        // Through the connection: the job writes under the root, and the acceptance says where.
        let p = try Self.separateRoles(outputRoot: root)
        let client = try p.connection()
        try p.signIn(client, role: .client, node: "c", secret: Self.clientSecret)
        try p.send(.submit(outputDirectory: "run-1", layout: .ptp, edits: [PeerPipeline.edit("a")], workingDirectory: "/home/someone"), to: client)
        #expect(try p.received(client) == [.accepted(jobID: "job-1", edits: 1, output: root.path + "/run-1")])
        try p.send(.submit(outputDirectory: outside.path, layout: .ptp, edits: [PeerPipeline.edit("b")], workingDirectory: "/"), to: client)
        guard case .error(let code, let reason)? = try p.received(client).first else { Issue.record("an outside folder was accepted"); return }
        #expect(code == WireError.Code.rejected.rawValue && reason.contains("outside this coordinator's output root"), "\(reason)")
        #expect(p.broker.jobs.count == 1 && client.isActive, "a refused job leaves the client connected")
    }

    @Test("limits: a batch line over --max-line-kb, a job over --max-job-edits, a client over its queue and everyone over theirs are refused with the limit named")
    func limits() throws {
        var settings = BrokerSettings()
        (settings.maximumLineBytes, settings.maximumJobEdits, settings.maximumClientQueuedEdits, settings.maximumQueuedEdits) = (4096, 50, 60, 100)
        let p = try Self.separateRoles(settings: settings)
        let a = try p.connection(from: "10.0.0.7"), b = try p.connection(from: "10.0.0.8"), c = try p.connection(from: "10.0.0.9")
        for (channel, node) in [(a, "a"), (b, "b"), (c, "c")] { try p.signIn(channel, role: .client, node: node, secret: Self.clientSecret) }
        func submit(_ channel: EmbeddedChannel, _ count: Int, prefix: String) throws -> WireMessage? {
            try p.send(.submit(outputDirectory: "/results/\(prefix)", layout: .ptp, edits: (0..<count).map { PeerPipeline.edit("\(prefix)\($0)") }), to: channel)
            return try p.received(channel).first
        }
        func expectRefused(_ answer: WireMessage?, naming flag: String, sourceLocation: SourceLocation = #_sourceLocation) {
            guard case .error(let code, let reason)? = answer else { Issue.record("accepted: \(String(describing: answer))", sourceLocation: sourceLocation); return }
            #expect(code == WireError.Code.overLimit.rawValue && reason.contains(flag), "\(reason)", sourceLocation: sourceLocation)
        }
        // A line of a 25,000-word prompt.
        let long = try EditEnvelope(EditSpec(id: "long", source: String(repeating: "word ", count: 25_000), targets: ["a blue circle"]))
        try p.send(.submit(outputDirectory: "/results/long", layout: .ptp, edits: [long]), to: a)
        expectRefused(try p.received(a).first, naming: "--max-line-kb")
        expectRefused(try submit(a, 51, prefix: "big"), naming: "--max-job-edits")
        #expect(try submit(a, 40, prefix: "a1") == .accepted(jobID: "job-1", edits: 40, output: "/results/a1"))
        expectRefused(try submit(a, 30, prefix: "a2"), naming: "--max-client-queued-edits")
        #expect(try submit(b, 50, prefix: "b1") == .accepted(jobID: "job-2", edits: 50, output: "/results/b1"), "another client has its own queue")
        expectRefused(try submit(c, 20, prefix: "c1"), naming: "--max-queued-edits")
        #expect(p.broker.jobs.count == 2 && [a, b, c].allSatisfy(\.isActive), "refusals keep clients connected")
        // Once a job is over, its client may queue again.
        for edit in p.broker.jobs["job-1"]?.edits.values ?? [:].values { edit.state = .failed }
        p.broker.releaseFinishedJobs()
        #expect(try submit(a, 30, prefix: "a3") == .accepted(jobID: "job-3", edits: 30, output: "/results/a3"))
    }

    @Test("pictures a client sent for no job yet count against its picture limit; unfinished jobs restored from the journal count against the overall limit")
    func picturesAndRestoredJobs() throws {
        var settings = BrokerSettings()
        settings.maximumPictureBytesPerClient = 250
        let broker = TaskBroker(nextJobNumber: 1, metrics: CoordinatorMetrics(), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
                                settings: settings)
        let (a, b, c) = (BrokerPictureTests.picture(1), BrokerPictureTests.picture(2), BrokerPictureTests.picture(3))
        try broker.pictureArrived(a, client: "10.0.0.7")
        try broker.pictureArrived(b, client: "10.0.0.7")
        let refused = #expect(throws: SubmissionError.self) { try broker.pictureArrived(c, client: "10.0.0.7") }
        #expect(refused?.code == .overLimit && refused?.description.contains("--max-client-picture-mb") == true, "\(String(describing: refused))")
        try broker.pictureArrived(c, client: "10.0.0.8")

        let h = try BrokerHarness()
        _ = try h.submit([BrokerHarness.edit("a"), BrokerHarness.edit("b")])
        #expect(h.broker.ledger.totalQueued == 2)
        try h.restart()
        #expect(h.broker.ledger.totalQueued == 2 && h.broker.ledger.queued[TaskBroker.journalClient] == 2)
    }
}
