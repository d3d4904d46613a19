import ArgumentParser
import Benchmarks
import Foundation

/// A large dataset job queued on a coordinator process (`DatasetScale`).
struct ScaleBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "A dataset job of LINES x SAMPLES variants queued on a coordinator with no worker: seconds to accept it, resident memory, status latency, restart after kill -9.")

    @Option(help: "Sampled lines in the job.")
    var lines: Int = 10_000

    @Option(help: "Variants per line.")
    var samples: Int = 100

    @Option(help: "Status requests timed.")
    var statusCalls: Int = 100

    func validate() throws {
        guard lines >= 1, (1...100_000).contains(samples), statusCalls >= 1 else {
            throw ValidationError("--lines and --status-calls must be at least 1, --samples between 1 and 100000")
        }
    }

    func run() throws {
        try DatasetScale(lines: lines, samples: samples, statusCalls: statusCalls,
                         executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()).run { print($0) }
    }
}
