import CZstd
import EditContract
import Foundation
import NIOCore
import NIOEmbedded
import Testing
import Wire

@Suite("frames and messages through SwiftNIO's ByteToMessageDecoder")
struct FrameDecodingTests {
    let codec = TensorCodec()

    func channel(limit: Int = 1 << 20, tensorBytes: Int = 1 << 30) throws -> EmbeddedChannel {
        try channel(limits: ConnectionLimits(frameBytes: limit, tensorBytes: tensorBytes))
    }

    func channel(limits: ConnectionLimits) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireMessageDecoder(limits: limits, codec: codec)))
        return channel
    }

    func frame(_ message: WireMessage) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try WireMessageEncoder(codec: codec).encode(data: message, out: &buffer)
        return buffer
    }

    func decoded(_ channel: EmbeddedChannel) throws -> [WireMessage] {
        var messages: [WireMessage] = []
        while let message = try channel.readInbound(as: WireMessage.self) { messages.append(message) }
        return messages
    }

    static let envelope = try! EditEnvelope(EditSpec(id: "e1", source: "a cat on a bike", targets: ["a dog on a bike"]))
    /// A real-image edit: its picture's digest travels beside the spec.
    static let pictured: EditEnvelope = {
        var spec = EditSpec(id: "e2", source: "a cat on a bike", targets: ["a dog on a bike"])
        (spec.image, spec.imageSHA256) = ("cat.jpg", String(repeating: "0f", count: 32))
        return try! EditEnvelope(spec)
    }()
    static let line: EditEnvelope = {
        var spec = EditSpec(id: "l1", source: "a red circle", targets: ["a blue circle"])
        spec.sampling = SamplingPlan(samples: 100, keep: 4, filter: .instructPix2Pix, keepRejected: true, scorer: "clip", instruction: "make it blue")
        return try! EditEnvelope(spec)
    }()
    static let run = EditRun(model: "m@1234", mode: .replace, settings: .init(steps: 20, guidance: 7.5, height: 512, width: 512,
                                                                              scheduler: "DPMSolverMultistepScheduler,use_karras_sigmas=true", precision: .bf16))

    static let samples: [WireMessage] = [
        .hello(version: WireProtocol.version, role: .worker, nodeID: "node-ä",
               capabilities: NodeCapabilities(models: ["default", "default@bf16"], threads: 8, host: "h1", version: "ptp-4"), nonce: Array(100..<132)),
        .challenge(nonce: Array(0..<32)),
        .proof(mac: Array(repeating: 7, count: 32)),
        .welcome(sessionID: "s1", proof: Array(repeating: 9, count: 32)),
        .error(code: 5, reason: "no"),
        .goodbye(reason: "draining"),
        .credit(slots: 3),
        .assign(taskID: "t1", work: .stageOne([envelope, envelope], pictures: [CarriedPicture(bytes: [0x89, 0x50, 0x4E, 0x47])])),
        .assign(taskID: "t2", work: .finish(FinishWork(edit: "e1", index: 1, spec: envelope.finish(index: 1),
                                                       input: TensorPayload(name: "input", shape: [1, 2, 3], floats: [1, 2, 3, 4, 5, 6.5])))),
        .heartbeat(taskIDs: ["a", "b"]),
        .progress(taskID: "t1", step: 3, total: 50),
        .result(taskID: "t1", result: .stageOne([
            StageOneEdit(id: "e1", outcome: .ran(run, seconds: 1.5, output: TensorPayload(name: "latents", shape: [2, 1, 1], floats: [0.25, -1]))),
            StageOneEdit(id: "e2", outcome: .failed(reason: "'hat' is not a word of the source")),
            StageOneEdit(id: "e3", outcome: .ran(EditRun(model: "m", mode: .refine, settings: .init(steps: 4, guidance: 1, height: 8, width: 16,
                                                                                                    scheduler: nil, precision: nil)),
                                                 seconds: 0, output: TensorPayload(name: "latents", shape: [0], floats: []))),
        ])),
        .result(taskID: "t2", result: .finish(FinishedImage(seconds: 0.5, image: TensorPayload(name: "image", elementType: .uint8, shape: [3], bytes: [1, 2, 3])))),
        .failed(taskID: "t1", retryable: true, reason: "oom"),
        .submit(outputDirectory: "/out", layout: .ptp, edits: [envelope, pictured]),
        .submit(outputDirectory: "/data", layout: .hf, edits: [line]),
        .submit(outputDirectory: "run-7", layout: .ptp, edits: [envelope], workingDirectory: "/home/user"),
        .assign(taskID: "t3", work: .variant(VariantWork(line: line, index: 99))),
        .result(taskID: "t3", result: .variant(.ran(ScoredVariant(
            draw: VariantDraw(index: 99, seed: 1 << 52, selfReplace: 0.25, crossReplace: nil, guidance: 11.5), run: run, seconds: 3,
            scores: PairScores(text0: 0.3, text1: 0.21, direction: -0.05, image: 0.91),
            pictures: [TensorPayload(name: "image", elementType: .uint8, shape: [1, 1, 3], bytes: [1, 2, 3]),
                       TensorPayload(name: "image", elementType: .uint8, shape: [1, 1, 3], bytes: [4, 5, 6])])))),
        .result(taskID: "t4", result: .variant(.ran(ScoredVariant(draw: VariantDraw(index: 0, seed: 5), run: run, seconds: 1, scores: nil, pictures: [])))),
        .result(taskID: "t5", result: .variant(.failed(reason: "prompt too long"))),
        .accepted(jobID: "j1", edits: 20),
        .accepted(jobID: "j2", edits: 3, output: "/srv/ptp/run-7"),
        .watch(jobID: "j1"),
        .pictureQuery(digests: [String(repeating: "ab", count: 32), String(repeating: "0f", count: 32)]),
        .picturesMissing(digests: [String(repeating: "0f", count: 32)]),
        .picture(CarriedPicture(bytes: [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])),
        .pictureKept(digest: String(repeating: "0f", count: 32)),
        .jobProgress(jobID: "j1", report: JobProgressReport(job: JobStatus(id: "j1", output: "/out", edits: 2, finished: 1, failed: 1, running: 0,
                                                                          state: "completed-with-failures",
                                                                          variants: VariantProgress(total: 200, done: 150, failed: 1, kept: 6,
                                                                                                    rejected: ["clip_direction": 100, "ranked": 20])),
                                                            failures: ["e2": "no"], waiting: [:])),
        .statusRequest,
        .statusReport(ClusterStatus(nodes: [NodeStatus(id: "w", host: "h", state: "busy", task: "t1 3/50", stepsPerSecond: 1.25, imagesPerMinute: 3,
                                                       done: 4, failed: 0, lastHeard: 0.5, models: ["default"])],
                                    jobs: [], queuedTasks: 3, leasedTasks: 1, unserved: ["x@bf16": 12.5])),
    ]

    @Test("every message round-trips")
    func roundTrip() throws {
        let channel = try channel()
        for message in Self.samples { try channel.writeInbound(try frame(message)) }
        #expect(try decoded(channel) == Self.samples)
    }

    @Test("partial reads, one-byte feeds and concatenated frames")
    func streaming() throws {
        var all = ByteBuffer()
        for message in Self.samples { var f = try frame(message); all.writeBuffer(&f) }
        // One byte at a time.
        let slow = try channel()
        var bytes = all
        var seen: [WireMessage] = []
        while let byte = bytes.readSlice(length: 1) {
            try slow.writeInbound(byte)
            seen += try decoded(slow)
        }
        #expect(seen == Self.samples)
        // Everything in one buffer.
        let fast = try channel()
        try fast.writeInbound(all)
        #expect(try decoded(fast) == Self.samples)
        // Uneven pieces crossing frame boundaries.
        let uneven = try channel()
        var rest = all
        var size = 1
        seen = []
        while rest.readableBytes > 0 {
            let piece = rest.readSlice(length: min(size, rest.readableBytes))!
            try uneven.writeInbound(piece)
            seen += try decoded(uneven)
            size = size * 3 % 97 + 1
        }
        #expect(seen == Self.samples)
    }

    @Test("a length over the limit is refused from its 4 bytes alone")
    func maliciousLength() throws {
        let channel = try channel(limit: 1024)
        var header = ByteBuffer()
        header.writeInteger(UInt32(0xFFFF_FFF0))
        #expect(throws: WireError(.frameTooLarge, "frame of 4294967280 bytes over the limit of 1024")) { try channel.writeInbound(header) }
        // A web server's answer (a worker pointed at the metrics port) is named for what it is.
        let http = try self.channel(limit: 1024)
        let error = #expect(throws: WireError.self) { try http.writeInbound(ByteBuffer(string: "HTTP/1.1 400 Bad Request\r\n")) }
        #expect(error?.code == .malformed && error?.reason.contains("answered in HTTP") == true, "\(String(describing: error))")
        // TLS records (a ClientHello, an alert) read by a plaintext side: named, with the flag to give.
        for record: [UInt8] in [[0x16, 0x03, 0x01, 0x02, 0x00, 0x01], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]] {
            let tls = try self.channel(limit: 1024)
            let refused = #expect(throws: WireError.self) { try tls.writeInbound(ByteBuffer(bytes: record)) }
            #expect(refused?.code == .tlsMismatch && refused?.reason.contains("--tls-ca") == true, "\(String(describing: refused))")
        }
    }

    /// A result frame with one tensor of `megabytes` MiB of zeros that honestly declares its size
    /// (a few kilobytes compressed).
    static func zeros(megabytes: Int, name: String = "zeros") throws -> TensorPayload {
        TensorPayload(name: name, elementType: .uint8, shape: [megabytes << 20], bytes: [UInt8](repeating: 0, count: megabytes << 20))
    }

    @Test("tensors are refused before the handshake, unread: a small frame cannot make us allocate")
    func tensorsBeforeAuthentication() throws {
        let zstd = TensorCodec(zstdLevel: 19, shuffle: false)
        var frame = ByteBuffer()
        try WireMessageEncoder(codec: zstd).encode(data: .result(taskID: "t", result: .finish(FinishedImage(seconds: 0, image: try Self.zeros(megabytes: 64)))), out: &frame)
        #expect(frame.readableBytes < WireProtocol.unauthenticatedFrameLimit, "the frame fits the unauthenticated limit")
        let channel = try channel(limits: .unauthenticated())
        let error = #expect(throws: WireError.self) { try channel.writeInbound(frame) }
        #expect(error?.code == .unexpectedMessage && error?.reason.contains("before the handshake") == true, "\(String(describing: error))")
        // The same frame once authenticated.
        let limits = ConnectionLimits.unauthenticated()
        limits.authenticated(tensorBytes: 1 << 30)
        let open = try self.channel(limits: limits)
        try open.writeInbound(frame)
        #expect(try decoded(open).count == 1)
    }

    @Test("one message's tensors share one decompressed budget")
    func messageBudget() throws {
        let zstd = TensorCodec(zstdLevel: 3, shuffle: false)
        var frame = ByteBuffer()
        let run = Self.run
        let result = TaskResult.stageOne([StageOneEdit(id: "e1", outcome: .ran(run, seconds: 0, output: try Self.zeros(megabytes: 3, name: "a"))),
                                          StageOneEdit(id: "e2", outcome: .ran(run, seconds: 0, output: try Self.zeros(megabytes: 3, name: "b")))])
        try WireMessageEncoder(codec: zstd).encode(data: .result(taskID: "t", result: result), out: &frame)
        // Each tensor is under the limit of 4 MiB; together they are over it.
        let channel = try channel(limit: 1 << 20, tensorBytes: 4 << 20)
        let error = #expect(throws: WireError.self) { try channel.writeInbound(frame) }
        #expect(error?.code == .tensorRejected && error?.reason.contains("tensor b") == true, "\(String(describing: error))")
    }

    @Test("malformed bodies: unknown type, truncated fields, trailing bytes, oversized strings")
    func malformed() throws {
        func body(_ bytes: [UInt8]) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt32(bytes.count))
            buffer.writeBytes(bytes)
            return buffer
        }
        let cases: [([UInt8], WireError.Code)] = [
            ([99], .unknownMessage),
            ([10, 0, 0], .malformed),                   // credit with 2 of 4 bytes
            ([10, 0, 0, 0, 1, 9], .malformed),          // trailing byte
            ([4, 0xFF, 0xFF, 0xFF, 0xFF], .malformed),  // a 4 GiB string
            ([4, 0, 0, 0, 2, 0xC3, 0x28], .malformed),  // invalid UTF-8
            ([1, 0, 1, 9], .malformed),                 // unknown role
            ([], .malformed),                           // empty body
        ]
        for (bytes, code) in cases {
            let channel = try channel()
            var error: WireError?
            do { try channel.writeInbound(body(bytes)) } catch let e as WireError { error = e }
            #expect(error?.code == code, "\(bytes) gave \(String(describing: error))")
        }
    }
}

@Suite("tensor codec")
struct TensorCodecTests {
    func latents() -> TensorPayload {
        var g = SystemRandomNumberGenerator()
        let values = (0..<(4 * 64 * 64)).map { i in Float(sin(Double(i) * 0.01)) + Float.random(in: -0.1...0.1, using: &g) }
        return TensorPayload(name: "latents", shape: [1, 4, 64, 64], floats: values)
    }

    @Test("raw, zstd, shuffled and fp16 round trips", arguments: [
        TensorCodec(zstdLevel: nil, shuffle: false), TensorCodec(zstdLevel: 3, shuffle: false),
        TensorCodec(zstdLevel: 3, shuffle: true), TensorCodec(zstdLevel: 19, shuffle: true),
    ])
    func roundTrip(_ codec: TensorCodec) throws {
        for tensor in [latents(), latents().toFloat16(), TensorPayload(name: "empty", shape: [0, 3], floats: [])] {
            var buffer = ByteBuffer()
            try codec.encode(tensor, into: &buffer)
            #expect(try codec.decode(from: &buffer) == tensor)
        }
    }

    func encoded(_ tensor: TensorPayload, _ codec: TensorCodec = TensorCodec()) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try codec.encode(tensor, into: &buffer)
        return buffer
    }

    @Test("a zstd bomb is refused before decompressing")
    func bomb() throws {
        // 1 GiB of zeros compresses to a few kilobytes; declared as a small tensor, its frame's
        // content size gives it away.
        let huge = [UInt8](repeating: 0, count: 64 << 20)
        let bound = ZSTD_compressBound(huge.count)
        var compressed = [UInt8](repeating: 0, count: bound)
        let size = compressed.withUnsafeMutableBytes { out in huge.withUnsafeBytes { ZSTD_compress(out.baseAddress, bound, $0.baseAddress, huge.count, 3) } }
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(4))
        buffer.writeString("bomb")
        buffer.writeInteger(TensorPayload.ElementType.uint8.rawValue)
        buffer.writeInteger(UInt8(1))
        buffer.writeInteger(UInt32(16))
        buffer.writeInteger(UInt8(1))  // zstd
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt64(16))
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(UInt32(size))
        buffer.writeBytes(compressed.prefix(size))
        let lie = #expect(throws: WireError.self) { try TensorCodec().decode(from: &buffer) }
        #expect(lie?.code == .tensorRejected && lie?.reason.contains("does not state its size as 16 bytes") == true, "\(String(describing: lie))")

        // Honest about its size but over the limit: refused from the header.
        var large = try encoded(TensorPayload(name: "big", elementType: .uint8, shape: [huge.count], bytes: huge))
        let error = #expect(throws: WireError.self) { try TensorCodec(limit: 1 << 20).decode(from: &large) }
        #expect(error?.code == .tensorRejected && error?.reason.contains("limit") == true)

        // Honest and within the limit, but expanding like no real tensor does: refused before
        // decompressing, so it cannot hold the event loop (a 1 GiB bomb took 3 s to unpack).
        let bombBytes = [UInt8](repeating: 0, count: 256 << 20)
        var honest = try encoded(TensorPayload(name: "honest-bomb", elementType: .uint8, shape: [bombBytes.count], bytes: bombBytes))
        let started = Date()
        let ratio = #expect(throws: WireError.self) { try TensorCodec().decode(from: &honest) }
        #expect(ratio?.code == .tensorRejected && ratio?.reason.contains("1024:1") == true, "\(String(describing: ratio))")
        #expect(Date().timeIntervalSince(started) < 0.05, "refusing took \(Date().timeIntervalSince(started)) s")
        // Up to 64 MiB expands freely (a blank image compresses that well).
        var blank = try encoded(TensorPayload(name: "blank", elementType: .uint8, shape: [huge.count], bytes: huge))
        #expect(try TensorCodec().decode(from: &blank).bytes.count == huge.count)
    }

    @Test("size, shape and checksum lies are refused")
    func lies() throws {
        var buffer = try encoded(TensorPayload(name: "x", shape: [4], floats: [1, 2, 3, 4]), TensorCodec(zstdLevel: nil, shuffle: false))
        // Corrupt one data byte: the checksum catches it.
        let last = buffer.writerIndex - 1
        buffer.setInteger(UInt8(0x55), at: last)
        let corrupt = #expect(throws: WireError.self) { try TensorCodec().decode(from: &buffer) }
        #expect(corrupt?.reason.contains("checksum") == true)
    }
}

@Suite("authentication")
struct AuthenticationTests {
    let secret = SharedSecret(Array("a cluster secret of some length".utf8))
    let other = SharedSecret(Array("another secret, also long enough".utf8))

    @Test("proofs verify only with the same secret, prover, nonces, version, role and node")
    func proofs() {
        let (peer, coordinator) = (SharedSecret.nonce(), SharedSecret.nonce())
        let mac = secret.proof(by: .peer, version: 2, role: .worker, nodeID: "w1", peerNonce: peer, coordinatorNonce: coordinator)
        #expect(secret.verify(mac, by: .peer, version: 2, role: .worker, nodeID: "w1", peerNonce: peer, coordinatorNonce: coordinator))
        #expect(!other.verify(mac, by: .peer, version: 2, role: .worker, nodeID: "w1", peerNonce: peer, coordinatorNonce: coordinator))
        #expect(!secret.verify(mac, by: .coordinator, version: 2, role: .worker, nodeID: "w1", peerNonce: peer, coordinatorNonce: coordinator))
        #expect(!secret.verify(mac, by: .peer, version: 2, role: .worker, nodeID: "w1", peerNonce: SharedSecret.nonce(), coordinatorNonce: coordinator))
        #expect(!secret.verify(mac, by: .peer, version: 2, role: .worker, nodeID: "w1", peerNonce: peer, coordinatorNonce: SharedSecret.nonce()))
        #expect(!secret.verify(mac, by: .peer, version: 1, role: .worker, nodeID: "w1", peerNonce: peer, coordinatorNonce: coordinator))
        #expect(!secret.verify(mac, by: .peer, version: 2, role: .client, nodeID: "w1", peerNonce: peer, coordinatorNonce: coordinator))
        #expect(!secret.verify(mac, by: .peer, version: 2, role: .worker, nodeID: "w2", peerNonce: peer, coordinatorNonce: coordinator))
    }

    /// The coordinator's side of the exchange, as PeerHandler does it.
    func coordinatorAnswers(_ hello: WireMessage, proof: WireMessage, with key: SharedSecret, challenge: [UInt8]) -> (Bool, [UInt8]) {
        guard case .hello(_, let role, let nodeID, _, let peerNonce) = hello, case .proof(let mac) = proof else { return (false, []) }
        let valid = key.verify(mac, by: .peer, version: WireProtocol.version, role: role, nodeID: nodeID, peerNonce: peerNonce, coordinatorNonce: challenge)
        return (valid, key.proof(by: .coordinator, version: WireProtocol.version, role: role, nodeID: nodeID, peerNonce: peerNonce, coordinatorNonce: challenge))
    }

    @Test("the handshake is mutual: a coordinator without the secret is not trusted")
    func mutualHandshake() throws {
        let challenge = SharedSecret.nonce()
        // Both sides hold the secret.
        var client = ClientHandshake(secret: secret, role: .worker, nodeID: "w1")
        let proof = try client.answer(challenge: challenge)
        let (valid, welcome) = coordinatorAnswers(client.hello(), proof: proof, with: secret, challenge: challenge)
        #expect(valid)
        try client.accept(welcomeProof: welcome)
        #expect(client.welcomed)

        // A server with another secret cannot produce the welcome proof.
        var fooled = ClientHandshake(secret: secret, role: .worker, nodeID: "w1")
        let fooledProof = try fooled.answer(challenge: challenge)
        let (_, forged) = coordinatorAnswers(fooled.hello(), proof: fooledProof, with: other, challenge: challenge)
        let refusal = #expect(throws: WireError.self) { try fooled.accept(welcomeProof: forged) }
        #expect(refusal?.code == .authenticationFailed)
        #expect(!fooled.welcomed)

        // Nor can it reflect the peer's own proof back as its welcome.
        var reflected = ClientHandshake(secret: secret, role: .worker, nodeID: "w1")
        guard case .proof(let own) = try reflected.answer(challenge: challenge) else { Issue.record("no proof"); return }
        #expect(throws: WireError.self) { try reflected.accept(welcomeProof: own) }

        // A welcome before any challenge is out of order.
        var early = ClientHandshake(secret: secret, role: .client, nodeID: "c")
        #expect(throws: WireError.self) { try early.accept(welcomeProof: welcome) }
    }

    @Test("secrets load from a file or the environment, and missing ones are named")
    func loading() throws {
        #expect(throws: WireError.self) { try SharedSecret.load(file: nil, environment: [:]) }
        #expect(throws: WireError.self) { try SharedSecret.load(file: nil, environment: ["PTP_SECRET": "short"]) }
        _ = try SharedSecret.load(file: nil, environment: ["PTP_SECRET": "sixteen-characters"])
        #expect(throws: WireError.self) { try SharedSecret.load(file: "/nonexistent/secret", environment: [:]) }
        // Blanks are not a secret.
        #expect(throws: WireError.self) { try SharedSecret.load(file: nil, environment: ["PTP_SECRET": String(repeating: " ", count: 16)]) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-secret-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let blanks = folder.appendingPathComponent("blanks")
        try Data(String(repeating: " ", count: 20).utf8).write(to: blanks)
        #expect(throws: WireError.self) { try SharedSecret.load(file: blanks.path, environment: [:]) }
        // A secret file others can read is named, with the fix.
        let secret = folder.appendingPathComponent("secret")
        try Data("a-proper-secret-of-enough-bytes".utf8).write(to: secret)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: secret.path)
        #expect(SharedSecret.exposure(of: secret.path)?.contains("chmod 600") == true)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secret.path)
        #expect(SharedSecret.exposure(of: secret.path) == nil)
        // A link (as Kubernetes mounts secrets) is judged by its target, not by its own 777.
        let link = folder.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: secret)
        #expect(SharedSecret.exposure(of: link.path) == nil)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: secret.path)
        #expect(SharedSecret.exposure(of: link.path)?.contains("mode 640") == true)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secret.path)
        _ = try SharedSecret.load(file: secret.path, environment: [:])
    }
}
