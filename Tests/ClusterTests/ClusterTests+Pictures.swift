import EditContract
import Foundation
import Imaging
import Testing
import Wire

/// Users' own pictures on a cluster: carried with the batch (no worker opens a batch's path),
/// JPEG turned upright by its EXIF orientation, inverted once per picture and prompt.
extension ClusterTests {
    @Test("a JPEG (EXIF orientation 6) and a PNG, submitted detached and deleted before any worker starts (the coordinator killed -9 meanwhile), are edited upright on 2 workers; a second edit of the JPEG reuses its inversion; a mask travels too; bit-identical to ptp edit",
          .timeLimit(.minutes(10)))
    func picturesTravelWithTheBatch() throws {
        let harness = try ClusterHarness(name: "pictures")
        defer { harness.stopAll() }
        try harness.startCoordinator()
        let pictures = harness.directory.appendingPathComponent("pictures")
        func placePictures() throws {
            try? FileManager.default.removeItem(at: pictures)
            try FileManager.default.createDirectory(at: pictures, withIntermediateDirectories: true)
            let jpeg = ClusterHarness.root.appendingPathComponent("Tests/Fixtures/reference/jpeg/orientation-6.jpg")
            try FileManager.default.copyItem(at: jpeg, to: pictures.appendingPathComponent("phone.jpg"))
            try FileManager.default.copyItem(at: ClusterHarness.root.appendingPathComponent("demo/blue-circle.png"),
                                             to: pictures.appendingPathComponent("circle.png"))
            // A mask: white (editable) on the left half.
            var pixels = [UInt8](repeating: 0, count: 32 * 32 * 3)
            for y in 0..<32 { for x in 0..<16 { for c in 0..<3 { pixels[(y * 32 + x) * 3 + c] = 255 } } }
            try PNGCodec.write(RGBImage(width: 32, height: 32, pixels: pixels), to: pictures.appendingPathComponent("left.png"))
        }
        try placePictures()
        // Relative paths: the batch file's folder. The JPEG is stored 24 x 40 and shown 40 x 24.
        let lines = [
            #"{"id": "phone", "image": "pictures/phone.jpg", "source": "a red circle on a blue background", "targets": ["a green circle on a blue background"], "seed": 1, "steps": 8, "super_resolution": false}"#,
            #"{"id": "phone-again", "image": "pictures/phone.jpg", "source": "a red circle on a blue background", "targets": ["a yellow circle on a blue background"], "seed": 1, "steps": 8, "super_resolution": false}"#,
            #"{"id": "circle", "image": "pictures/circle.png", "source": "a blue circle on a green background", "targets": ["a red circle on a green background"], "seed": 1, "steps": 8}"#,
            #"{"id": "masked", "image": "pictures/circle.png", "mask": "pictures/left.png", "source": "a blue circle on a green background", "targets": ["a blue circle on a white background"], "seed": 1, "steps": 8, "super_resolution": false}"#,
        ]
        let batch = harness.directory.appendingPathComponent("pictures.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: batch)
        let output = harness.directory.appendingPathComponent("out")
        let submitted = harness.submit(batch, output: output, detach: true)
        #expect(submitted.status == 0, "\(submitted.output)")
        #expect(submitted.output.contains("pictures: 3 named, 3 sent"), "\(submitted.output)")
        // The pictures are gone before any worker exists, and the coordinator is killed -9 and
        // restarted: it holds them in its state folder, journaled with the job.
        try FileManager.default.removeItem(at: pictures)
        harness.kill("coordinator")
        try harness.start("coordinator-2", host: "coordinator", ["coordinator", "--port", String(harness.port), "--state",
                                                                  harness.directory.appendingPathComponent("state").path,
                                                                  "--secret-file", harness.secretFile.path])
        try harness.waitForCoordinator()
        try harness.startWorker("w1")
        try harness.startWorker("w2")
        try harness.waitForWorkers(["w1", "w2"])
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline && ClusterHarness.manifest(output).count < 4 { Thread.sleep(forTimeInterval: 0.5) }
        expectComplete(output, edits: 4)

        // Upright: 40 wide, 24 high, and (direct inversion reconstructs the source exactly in
        // this pixel-space model) within JPEG's loss of Pillow's upright decode.
        let source = try PNGCodec.read(output.appendingPathComponent("phone/source.png"))
        let upright = try PNGCodec.read(ClusterHarness.root.appendingPathComponent("Tests/Fixtures/reference/jpeg/orientation-6-upright.png"))
        #expect(source.width == 40 && source.height == 24, "the JPEG was edited at \(source.width)x\(source.height), not upright 40x24")
        if source.width == upright.width && source.height == upright.height {
            let worst = zip(source.pixels, upright.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 255
            #expect(worst <= 2, "the reconstructed source is \(worst) levels from the upright picture")
        }
        // Each manifest line says whether its inversion was cached; the JPEG's two edits share
        // one stage-1 task (one picture, one pack key), so the second inverts nothing.
        let manifest = Dictionary(uniqueKeysWithValues: ClusterHarness.manifest(output).map { ($0["id"] as? String ?? "", $0) })
        #expect(manifest["phone"]?["inversion_cached"] as? Bool == false, "\(manifest["phone"] ?? [:])")
        #expect(manifest["phone-again"]?["inversion_cached"] as? Bool == true, "\(manifest["phone-again"] ?? [:])")
        #expect(manifest["circle"]?["inversion_cached"] as? Bool == false)
        // The mask travelled too: right of it the edit is the source, pixel for pixel; left of it the background changed.
        let (kept, changed) = (try PNGCodec.read(output.appendingPathComponent("masked/source.png")),
                               try PNGCodec.read(output.appendingPathComponent("masked/target-1.png")))
        var right = 0, left = 0
        for y in 0..<kept.height {
            for x in 0..<kept.width {
                let at = (y * kept.width + x) * 3
                let differs: Bool = kept.pixels[at..<(at + 3)] != changed.pixels[at..<(at + 3)]
                if differs { if x < kept.width / 2 { left += 1 } else { right += 1 } }
            }
        }
        #expect(right == 0 && left > 0, "pixels changed: \(left) left of the mask's edge, \(right) right of it")
        let first = manifest["phone"]?["inversion_seconds"] as? Double ?? 0, again = manifest["phone-again"]?["inversion_seconds"] as? Double ?? 1
        #expect(again < first / 10, "cached inversion took \(again) s against \(first) s")
        print(String(format: "[pictures] inversion: %.3f s run, %.4f s cached", first, again))
        // A second job naming the same picture sends nothing.
        try placePictures()
        let resubmitted = harness.submit(batch, output: harness.directory.appendingPathComponent("out-again"), detach: true)
        #expect(resubmitted.output.contains("pictures: 3 named, 0 sent"), "\(resubmitted.output)")
        // The same files as single-machine ptp edit, which inverts every time.
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
    }

    @Test("a worker opens no path a batch names: an edit naming a file without carrying it fails by name, one naming a picture never sent is refused",
          .timeLimit(.minutes(5)))
    func workersOpenNoBatchPaths() throws {
        let harness = try ClusterHarness(name: "picture-paths")
        defer { harness.stopAll() }
        try harness.startCoordinator()
        try harness.startWorker("w1")
        try harness.waitForWorkers(["w1"])
        // A PNG the worker could read (it is on this machine), named by a client that does not
        // send it, as a hostile client would.
        let secret = try PNGCodec.encode(RGBImage(width: 32, height: 32, pixels: [UInt8](repeating: 200, count: 32 * 32 * 3)))
        let privateFile = harness.directory.appendingPathComponent("private.png")
        try secret.write(to: privateFile)
        var spec = EditSpec(id: "steal", source: "a red circle on a blue background", targets: ["a green circle on a blue background"])
        spec.image = privateFile.path
        spec.steps = 4
        let (host, port) = try #require(Self.address(harness.coordinatorAddress))
        let client = CoordinatorClient(host: host, port: port, credential: NodeCredential(secret: SharedSecret(Array(try Data(contentsOf: harness.secretFile)))), role: .client)
        try client.connect()
        defer { client.close() }
        let output = harness.directory.appendingPathComponent("out")
        guard case .accepted = try client.request(.submit(outputDirectory: output.path, layout: .ptp, edits: [try EditEnvelope(spec)])) else {
            Issue.record("the job was not accepted"); return
        }
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && ClusterHarness.manifest(output).isEmpty { Thread.sleep(forTimeInterval: 0.3) }
        let line = ClusterHarness.manifest(output).first
        #expect(line?["status"] as? String == "failed", "\(line ?? [:])")
        #expect((line?["error"] as? String)?.contains("image: names a picture, but its contents were not given") == true, "\(line ?? [:])")
        #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("steal/source.png").path))

        // A digest the coordinator was never sent: the job is refused before any worker sees it.
        spec.id = "forged"
        spec.imageSHA256 = String(repeating: "ab", count: 32)
        let forged = try client.request(.submit(outputDirectory: output.path, layout: .ptp, edits: [try EditEnvelope(spec)]))
        guard case .error(_, let reason) = forged else { Issue.record("a forged picture digest was accepted: \(forged)"); return }
        #expect(reason.contains("which this coordinator was not sent"), "\(reason)")
        // A picture whose bytes are not what its digest says is refused too.
        let lying = try client.request(.picture(CarriedPicture(digest: String(repeating: "cd", count: 32), bytes: [UInt8](secret))))
        guard case .error(_, let why) = lying else { Issue.record("a picture with a false digest was kept: \(lying)"); return }
        #expect(why.contains("not kept: its bytes are not the ones its SHA-256 names"), "\(why)")
    }

    static func address(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        return (String(text[..<colon]), port)
    }
}
