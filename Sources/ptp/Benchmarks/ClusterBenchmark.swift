import ArgumentParser
import Benchmarks
import Foundation

/// Images per minute of a local cluster with 1, 2... workers on the same batch (`ClusterThroughput`).
struct ClusterBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Throughput of a local cluster: the same batch through 1, 2... workers (separate processes), images per minute and the speed-up.")

    @Option(parsing: .upToNextOption, help: "Worker counts to measure.")
    var workers: [Int] = [1, 2]

    @Option(help: "Threads per worker.")
    var threads: Int = 1

    @Option(help: "Edits in the batch (two prompts each).")
    var edits: Int = 16

    @Option(help: "Model directory (default: the embedded model).")
    var model: String?

    @Option(help: "Denoising steps (default: the model's).")
    var steps: Int?

    func run() throws {
        let throughput = ClusterThroughput(workers: workers, threads: threads, edits: edits, modelPath: try ModelLocation.resolve(model).path, steps: steps,
                                           executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath())
        try throughput.run { print($0) }
    }
}
