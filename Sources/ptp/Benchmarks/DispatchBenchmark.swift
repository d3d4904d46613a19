import ArgumentParser
import Benchmarks

/// Dispatch capacity: an in-process coordinator and simulated workers (`InstantWorker`).
struct DispatchBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dispatch",
        abstract: "Tasks per second through the coordinator, to simulated workers that answer at once, at several connection counts.",
        discussion: "Real jobs (stage-1 and finish tasks, journal, blobs, pictures, manifest) with no model work, over TCP on loopback.")

    @Option(parsing: .upToNextOption, help: "Worker connection counts to measure.")
    var connections: [Int] = [10, 100, 1000]

    @Option(help: "Edits per measurement (each: half a stage-1 task and two finish tasks).")
    var edits: Int = 2000

    func validate() throws {
        guard edits >= 1, connections.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--edits and --connections must be at least 1") }
    }

    func run() throws {
        try DispatchMeasurement(connections: connections, edits: edits).run { print($0) }
    }
}
