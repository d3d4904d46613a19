@testable import Coordinator
import EditContract
import Foundation
import Imaging
import Testing
import Wire

/// The InstructPix2Pix layout's files as its scripts write them, so its training code reads
/// ours unchanged: each pair folder's prompt.json, `<seed>_0.jpg` / `<seed>_1.jpg` and
/// metadata.jsonl, and seeds.json at the top, written by the real file store.
@Suite("dataset files in the InstructPix2Pix layout")
struct DatasetFilesTests {
    let state = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-dataset-files-\(UUID().uuidString)")
    var output: URL { state.appendingPathComponent("out") }

    /// A 4x2 picture of one colour, staged as a worker's result would be.
    func stage(_ store: FileResultStore, line: String, variant: Int, picture: Int, value: UInt8) throws {
        let bytes = [UInt8](repeating: value, count: 2 * 4 * 3)
        try store.save(TensorPayload(name: "image", elementType: .uint8, shape: [2, 4, 3], bytes: bytes),
                       job: "job-1", edit: line, name: LineOutputs.stagedName(variant: variant, picture: picture))
    }

    func record(_ index: Int, seed: UInt64, direction: Double) -> VariantRecord {
        VariantRecord(index: index, seed: seed, values: ["self_replace": 0.25, "guidance": 9.5],
                      run: EditRun(model: "shapes-world", mode: .replace,
                                   settings: .init(steps: 100, guidance: 9.5, height: 2, width: 4, scheduler: "euler-a", precision: nil)),
                      worker: "w1", seconds: 1, scores: PairScores(text0: 0.3125, text1: 0.28, direction: direction, image: 1e-05), error: nil, staged: true)
    }

    func outputs(line: String, prompts: [String], instruction: String?, pictures: [LineOutputs.Pictures]) -> LineOutputs {
        LineOutputs(job: "job-1", line: line, folder: output, layout: .instructPix2Pix, prompts: prompts, instruction: instruction,
                    pictures: pictures, manifest: [], change: JournalChange())
    }

    @Test("prompt.json, metadata.jsonl and seeds.json are byte for byte what Python's json writes; kept pictures are JPEGs by seed, rejected ones apart")
    func instructPix2PixFiles() throws {
        defer { try? FileManager.default.removeItem(at: state) }
        let store = FileResultStore(state: state)
        _ = try store.prepareOutput(output)
        for (variant, value) in [(3, UInt8(40)), (7, 200), (9, 90)] {
            try stage(store, line: "0000001", variant: variant, picture: 0, value: value)
            try stage(store, line: "0000001", variant: variant, picture: 1, value: value &+ 10)
        }
        try store.writeLine(outputs(line: "0000001", prompts: ["a red café", "a \"blue\" café"], instruction: "make it blue\u{1F535}", pictures: [
            .init(record: record(7, seed: 4_000_000_001, direction: 0.5), kept: true),
            .init(record: record(3, seed: 12, direction: 0.25), kept: true),
            .init(record: record(9, seed: 99, direction: 0.1), kept: false),
        ]))
        try stage(store, line: "0000000", variant: 0, picture: 0, value: 1)
        try stage(store, line: "0000000", variant: 0, picture: 1, value: 2)
        try store.writeLine(outputs(line: "0000000", prompts: ["a", "b"], instruction: nil, pictures: [.init(record: record(0, seed: 5, direction: 0.3), kept: true)]))
        // A line that kept nothing has no pictures, and seeds.json leaves it out.
        try store.writeLine(outputs(line: "0000002", prompts: ["c", "d"], instruction: "e", pictures: []))
        try store.writeDatasetFiles(in: output, layout: .instructPix2Pix)

        func text(_ path: String) throws -> String { try String(contentsOf: output.appendingPathComponent(path), encoding: .utf8) }
        #expect(try text("0000001/prompt.json") == #"{"input": "a red caf\u00e9", "edit": "make it blue\ud83d\udd35", "output": "a \"blue\" caf\u00e9"}"#)
        #expect(try text("0000001/metadata.jsonl") == """
            {"seed": 4000000001, "p2p_threshold": 0.25, "cfg_scale": 9.5, "clip_sim_0": 0.3125, "clip_sim_1": 0.28, "clip_sim_dir": 0.5, "clip_sim_image": 1e-05}
            {"seed": 12, "p2p_threshold": 0.25, "cfg_scale": 9.5, "clip_sim_0": 0.3125, "clip_sim_1": 0.28, "clip_sim_dir": 0.25, "clip_sim_image": 1e-05}

            """)
        #expect(try text("0000002/prompt.json") == #"{"input": "c", "edit": "e", "output": "d"}"#)
        #expect(try text("0000002/metadata.jsonl") == "")
        #expect(try text("seeds.json") == #"[["0000000", ["5"]], ["0000001", ["12", "4000000001"]]]"#)

        for (seed, value) in [(12, 40), (4_000_000_001, 200)] {
            for picture in 0..<2 {
                let image = try JPEGCodec.decode(Data(contentsOf: output.appendingPathComponent("0000001/\(seed)_\(picture).jpg")))
                #expect(image.width == 4 && image.height == 2)
                let expected = value + 10 * picture
                #expect(image.pixels.allSatisfy { abs(Int($0) - expected) <= 2 }, "seed \(seed) picture \(picture): \(image.pixels.prefix(6)) not \(expected)")
            }
        }
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("rejected/0000001/99_0.jpg").path))
        #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("0000001/99_0.jpg").path))
        #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("data").path), "Parquet shards are the hf layout's")
    }

    @Test("Python's json: strings with every escape it makes, floats in their shortest form")
    func pythonJSON() {
        #expect(InstructPix2PixRecords.pythonString("a\tb\n\"\\/\u{7}é") == #""a\tb\n\"\\/\u0007\u00e9""#)
        #expect(InstructPix2PixRecords.pythonNumber(0.1) == "0.1")
        #expect(InstructPix2PixRecords.pythonNumber(7.5) == "7.5")
        #expect(InstructPix2PixRecords.pythonNumber(1e16) == "1e+16")
        #expect(InstructPix2PixRecords.pythonNumber(nil) == "null")
    }
}
