import Foundation
import Testing

/// SDXL in the cluster: workers serving an SDXL folder beside an SD 1.x one.
extension ClusterTests {
    @Test("a batch mixing SD 1.x and SDXL edits over 2 workers is bit-identical to ptp edit", .timeLimit(.minutes(10)))
    func mixedStableDiffusionAndSDXL() throws {
        let harness = try ClusterHarness(name: "mixed-sdxl")
        defer { harness.stopAll() }
        try harness.startCoordinator()
        let sdxl = ClusterHarness.root.appendingPathComponent("Tests/Fixtures/reference/tiny-sdxl").path
        for id in ["w1", "w2"] { try harness.startWorker(id, extra: ["--model", sdxl]) }
        try harness.waitForWorkers(["w1", "w2"])
        let sd = try String(contentsOf: try harness.batch("sd", count: 4, steps: 6, size: 128), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        // SDXL: replace, refine with its size conditioning, LocalBlend with reweighting, and a
        // negative prompt (the others have SDXL's zeroed negative embeddings).
        let common = "\"steps\": 6, \"height\": 128, \"width\": 128, \"model\": \"\(sdxl)\""
        let xl = [
            "{\"id\": \"xl-replace\", \"source\": \"a cat sitting on a red sofa\", \"targets\": [\"a dog sitting on a red sofa\"], \"seed\": 1, \(common)}",
            "{\"id\": \"xl-refine\", \"source\": \"a cat sitting on a red sofa\", \"targets\": [\"a cat sitting on a red leather sofa\"], \"seed\": 2, \"original_size\": [256, 192], \"crops_coords_top_left\": [8, 0], \(common)}",
            "{\"id\": \"xl-blend\", \"source\": \"a cat sitting on a red sofa\", \"targets\": [\"a dog sitting on a red sofa\"], \"blend\": [[\"cat\"], [\"dog\"]], \"blend_threshold\": 0.9, \"reweight\": {\"dog\": 2}, \"seed\": 3, \(common)}",
            "{\"id\": \"xl-negative\", \"source\": \"a photo of a cat\", \"targets\": [\"a photo of a dog\"], \"negative_prompt\": \"blurry\", \"seed\": 4, \(common)}",
        ]
        // Interleaved, so that both models are in flight on both workers.
        let lines = zip(sd, xl).flatMap { [$0, $1] }
        let batch = harness.directory.appendingPathComponent("mixed.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: batch)
        let output = harness.directory.appendingPathComponent("out")
        let submitted = harness.submit(batch, output: output)
        #expect(submitted.status == 0, "\(submitted.output)")
        expectComplete(output, edits: 8)
        let manifest = ClusterHarness.manifest(output)
        let models = Set(manifest.compactMap { $0["model"] as? String }.map { $0.split(separator: "@").first.map(String.init) ?? $0 })
        #expect(models.count == 2, "models in the manifest: \(models)")
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
    }
}
