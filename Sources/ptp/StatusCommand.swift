import ArgumentParser
import Foundation
import Wire

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each node's state and throughput, and each job's progress.",
        discussion: "Prints once; --watch redraws the table in place until interrupted (for a login node without a browser).")

    @Option(help: "The coordinator, HOST:PORT.")
    var coordinator: String

    @Flag(help: "Refresh in place every --interval seconds until interrupted; rides out coordinator restarts.")
    var watch = false

    @Option(help: "Seconds between refreshes with --watch (0.2 to 3600).")
    var interval: Double = 2

    /// Printing once is the default; the flag stays for scripts written before --watch.
    @Flag(help: .hidden)
    var once = false

    @Flag(help: "Print the raw JSON report (with --watch, one line per refresh).")
    var json = false

    @OptionGroup var secret: SecretOptions

    func validate() throws {
        guard interval >= 0.2, interval <= 3600 else { throw ValidationError("--interval: \(interval) s is out of range; use 0.2 to 3600") }
        guard !(watch && once) else { throw ValidationError("--watch and --once contradict each other; give one") }
    }

    func run() throws {
        let secret = try secret.load()
        guard watch else {
            print(try render(try report(from: connect(secret))))
            return
        }
        let screen = LiveScreen(interactive: isatty(STDOUT_FILENO) != 0 && !json)
        var client: ClusterClient?
        while true {
            var frame: String
            do {
                let connected = try client ?? connect(secret)
                client = connected
                frame = try render(try report(from: connected))
            } catch {
                // The coordinator may be restarting: say so, and try again next time.
                client = nil
                frame = "\(coordinator) unreachable: \(error); retrying every \(LiveScreen.seconds(interval))"
            }
            if json {
                print(frame)
            } else {
                screen.draw("ptp status of \(coordinator) at \(LiveScreen.clock()), every \(LiveScreen.seconds(interval)) (Ctrl-C to stop)\n\n" + frame)
            }
            fflush(nil)
            Thread.sleep(forTimeInterval: interval)
        }
    }

    private func connect(_ secret: SharedSecret) throws -> ClusterClient {
        let client = try ClusterClient(address: coordinator, secret: secret, role: .monitor)
        try client.connect()
        return client
    }

    private func report(from client: ClusterClient) throws -> String {
        try client.send(.statusRequest)
        guard case .statusReport(let text)? = try client.next(timeout: 10) else { throw CommandError("no status report") }
        return text
    }

    private func render(_ text: String) throws -> String {
        json ? text : StatusTable.render(try ClusterStatus.fromJSON(text, what: "status report"))
    }
}

/// A terminal region redrawn in place: the cursor goes home and each line clears its tail,
/// so a refresh does not flicker the way clearing the whole screen does. Off a terminal, each
/// frame is printed after the last.
struct LiveScreen {
    let interactive: Bool

    func draw(_ frame: String) {
        guard interactive else {
            print(frame + "\n")
            return
        }
        let lines = frame.split(separator: "\n", omittingEmptySubsequences: false)
        print("\u{1B}[H" + lines.joined(separator: "\u{1B}[K\n") + "\u{1B}[K\n\u{1B}[J", terminator: "")
    }

    static func clock() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: Date())
    }

    static func seconds(_ interval: Double) -> String {
        interval == interval.rounded() ? "\(Int(interval)) s" : String(format: "%.1f s", interval)
    }
}

/// The text of `ptp status`.
enum StatusTable {
    static func render(_ status: ClusterStatus) -> String {
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count) }
        var lines = ["NODE                 STATE     TASK                        STEPS/S  IMAGES/MIN  DONE  FAILED  LAST HEARD"]
        for node in status.nodes {
            lines.append(pad(node.id, 21) + pad(node.state, 10) + pad(node.task ?? "-", 28)
                + pad(String(format: "%.2f", node.stepsPerSecond), 9) + pad(String(format: "%.1f", node.imagesPerMinute), 12)
                + pad(String(node.done), 6) + pad(String(node.failed), 8) + String(format: "%.0f s ago", node.lastHeard))
        }
        if status.nodes.isEmpty { lines.append("(no workers connected)") }
        lines.append("")
        lines.append("queued tasks: \(status.queuedTasks), running: \(status.leasedTasks)")
        for (model, seconds) in status.unserved.sorted(by: { $0.key < $1.key }) {
            lines.append("waiting \(Int(seconds)) s for a worker serving \(model): no connected worker serves it")
        }
        lines.append("JOB        STATE                    FINISHED  FAILED  RUNNING  TOTAL  OUTPUT")
        for job in status.jobs {
            lines.append(pad(job.id, 11) + pad(job.state, 25) + pad(String(job.finished), 10) + pad(String(job.failed), 8)
                + pad(String(job.running), 9) + pad(String(job.edits), 7) + job.output)
        }
        return lines.joined(separator: "\n")
    }
}
