import Foundation
import Testing

/// Generated edit datasets end to end: sampled lines on real processes, in the layout Hugging
/// Face `datasets` loads, and the same kept set whatever dies on the way.
extension ClusterTests {
    /// A small random CLIP saved by transformers, the scorer of these tests (its scores are
    /// arbitrary but deterministic, which is what comparing kept sets needs).
    static let tinyClip = ClusterHarness.root.appendingPathComponent("Tests/Fixtures/reference/tiny-clip").path

    /// Four caption pairs of the embedded model, six variants each, the best two kept.
    func datasetBatch(_ harness: ClusterHarness) throws -> URL {
        let pairs = [("a red circle on a blue background", "a yellow circle on a blue background", "make the circle yellow"),
                     ("a big green square on a white background", "a big green triangle on a white background", "make it a triangle"),
                     ("a small blue star on a black background", "a small blue star on a red background", "make the background red"),
                     ("a purple heart on a green background", "a purple heart on a yellow background", "turn the background yellow")]
        let lines = pairs.enumerated().map { i, pair in
            #"{"id": "pair-\#(i)", "source": "\#(pair.0)", "targets": ["\#(pair.1)"], "instruction": "\#(pair.2)", "seed": \#(10 + i), "# +
                #""samples": 6, "keep": 2, "scorer": "\#(Self.tinyClip)", "steps": 8, "super_resolution": false, "# +
                #""vary": {"self_replace": [0.1, 0.9], "guidance": [3, 9]}, "filter": {"clip_text": -1, "clip_direction": -1, "clip_image": -1}}"#
        }
        let url = harness.directory.appendingPathComponent("dataset.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url
    }

    func submitDataset(_ harness: ClusterHarness, _ batch: URL, output: URL, detach: Bool) -> (status: Int32, output: String, signalled: Bool) {
        ClusterHarness.run([ClusterHarness.ptp.path, "submit", batch.path, "--coordinator", harness.coordinatorAddress, "--output", output.path,
                            "--dataset", "hf", "--secret-file", harness.secretFile.path] + (detach ? ["--detach"] : []), timeout: 600)
    }

    /// Every file under `folder` but the manifest (whose lines carry workers and times), by
    /// relative path.
    static func files(_ folder: URL) -> [String: Data] {
        var files: [String: Data] = [:]
        let prefix = folder.standardizedFileURL.path + "/"
        guard let walk = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey]) else { return [:] }
        for case let url as URL in walk where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            let path = String(url.standardizedFileURL.path.dropFirst(prefix.count))
            if path != "manifest.jsonl", let data = try? Data(contentsOf: url) { files[path] = data }
        }
        return files
    }

    /// Each variant's verdict, seed and scores from a manifest, by line and variant.
    static func verdicts(_ output: URL) -> [String: String] {
        var verdicts: [String: String] = [:]
        for line in ClusterHarness.manifest(output) {
            guard let id = line["id"] as? String, let variant = line["variant"] as? Int else { continue }
            let key = "\(id)/\(variant)"
            #expect(verdicts[key] == nil, "variant \(key) is in the manifest twice")
            verdicts[key] = ["status", "seed", "clip_direction", "clip_text_0", "clip_text_1", "clip_image", "images"]
                .map { "\(line[$0] ?? "-")" }.joined(separator: " ")
        }
        return verdicts
    }

    @Test("a dataset job whose coordinator and a worker are killed -9 mid-way keeps the same pairs, bit-identical, as an uninterrupted run; Hugging Face datasets loads them",
          .timeLimit(.minutes(10)))
    func datasetAcrossRestarts() throws {
        let harness = try ClusterHarness(name: "dataset")
        defer { harness.stopAll() }
        let coordinatorArguments = ["coordinator", "--port", String(harness.port), "--state", harness.directory.appendingPathComponent("state").path,
                                    "--lease", "4", "--attempts", "20", "--secret-file", harness.secretFile.path]
        func startWorker(_ name: String, id: String) throws {
            try harness.start(name, ["worker", "--coordinator", harness.coordinatorAddress, "--threads", "1", "--node-id", id,
                                     "--heartbeat", "1", "--scorer", Self.tinyClip, "--secret-file", harness.secretFile.path])
        }
        try harness.start("coordinator-0", coordinatorArguments)
        try harness.waitForCoordinator()
        try startWorker("w1-0", id: "w1")
        try startWorker("w2-0", id: "w2")
        try harness.waitForWorkers(["w1", "w2"])
        let batch = try datasetBatch(harness)

        let reference = harness.directory.appendingPathComponent("reference")
        let uninterrupted = submitDataset(harness, batch, output: reference, detach: false)
        #expect(uninterrupted.status == 0, "\(uninterrupted.output)")
        let referenceFiles = Self.files(reference)
        #expect(referenceFiles.keys.filter { $0.hasSuffix("_0.jpg") }.count == 8, "\(referenceFiles.keys.sorted())")

        // The same batch again, with the coordinator and a worker killed once a line has ended.
        let output = harness.directory.appendingPathComponent("out")
        #expect(submitDataset(harness, batch, output: output, detach: true).status == 0)
        var deadline = Date().addingTimeInterval(300)
        while Date() < deadline && !ClusterHarness.manifest(output).contains(where: { $0["samples"] != nil }) { Thread.sleep(forTimeInterval: 0.1) }
        let linesEnded = ClusterHarness.manifest(output).filter { $0["samples"] != nil }.count
        harness.kill("w1-0")
        harness.kill("coordinator-0")
        let killedAt = Date()
        try harness.start("coordinator-1", coordinatorArguments)
        try harness.waitForCoordinator()
        try startWorker("w1-1", id: "w1")
        let seeds = output.appendingPathComponent("seeds.json")
        deadline = Date().addingTimeInterval(300)
        while Date() < deadline && !FileManager.default.fileExists(atPath: seeds.path) { Thread.sleep(forTimeInterval: 0.2) }
        print("[dataset] killed after \(linesEnded) of 4 lines ended; finished \(Int(Date().timeIntervalSince(killedAt))) s after the restart")
        #expect(linesEnded < 4, "the batch ended before the kill; the restart was not tested")

        let files = Self.files(output)
        #expect(files.keys.sorted() == referenceFiles.keys.sorted())
        for (path, data) in referenceFiles where files[path] != data { Issue.record("\(path) differs from the uninterrupted run's") }
        #expect(Self.verdicts(output) == Self.verdicts(reference))
        #expect(Self.verdicts(output).count == 24)

        // What users do with it.
        let python = ClusterHarness.run([ClusterHarness.root.appendingPathComponent("scripts/datasets-env").path], timeout: 900)
        guard python.status == 0, let interpreter = python.output.split(separator: "\n").last.map(String.init) else {
            print("[skip] loading with Hugging Face datasets: scripts/datasets-env could not install it here: \(python.output.suffix(300))")
            return
        }
        let script = """
            import datasets, json, sys
            rows = datasets.load_dataset(sys.argv[1], split="train")
            print(json.dumps({"features": {k: v._type for k, v in rows.features.items()}, "rows": [
                [r["original_prompt"], r["edit_prompt"], r["edited_prompt"], list(r["original_image"].size), list(r["edited_image"].size)]
                for r in rows]}))
            """
        let loaded = ClusterHarness.run([interpreter, "-c", script, output.path],
                                        environment: ["HF_DATASETS_CACHE": harness.directory.appendingPathComponent("hf-cache").path,
                                                      "HF_HUB_OFFLINE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"])
        #expect(loaded.status == 0, "\(loaded.output.suffix(2000))")
        let json = loaded.output.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let features = json?["features"] as? [String: String]
        #expect(features == ["original_prompt": "Value", "original_image": "Image", "edit_prompt": "Value", "edited_prompt": "Value", "edited_image": "Image"])
        let rows = json?["rows"] as? [[Any]] ?? []
        #expect(rows.count == 8, "\(loaded.output.suffix(2000))")
        #expect(Set(rows.compactMap { $0.first as? String }) == ["a red circle on a blue background", "a big green square on a white background",
                                                                    "a small blue star on a black background", "a purple heart on a green background"])
        #expect(rows.contains { $0.count == 5 && $0[1] as? String == "make the circle yellow" && $0[2] as? String == "a yellow circle on a blue background" })
        #expect(rows.allSatisfy { $0.count == 5 && ($0[3] as? [Int]) == ($0[4] as? [Int]) && ($0[3] as? [Int])?.first ?? 0 >= 32 })
    }
}
