import ArgumentParser
import Benchmarks

/// The tensor codec on real stage-1 outputs (`CodecMeasurement`).
struct CodecBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec",
        abstract: "Compression ratio and MB/s of the wire's tensor codec on real stage-1 outputs (zstd levels, byte shuffling, fp16).")

    @Option(help: "Model directory (default: the embedded model).")
    var model: String?

    @Option(help: "Edits whose stage-1 outputs are measured.")
    var edits: Int = 4

    @Option(help: "Denoising steps of those edits (default: the model's).")
    var steps: Int?

    func run() throws {
        try CodecMeasurement(model: try ModelLocation.load(model), edits: edits, steps: steps).run { print($0) }
    }
}
