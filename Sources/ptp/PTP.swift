import ArgumentParser
import Engine

@main
struct PTP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptp",
        abstract: "Prompt-to-Prompt image editing on CPUs, from one machine to a cluster.",
        subcommands: [Generate.self, Edit.self, Evaluate.self, CoordinatorCommand.self, WorkerCommand.self, Submit.self, Status.self, Benchmark.self])

    static func main() {
        KernelChoice.restartIfMisdetected()
        main(nil)
    }
}
