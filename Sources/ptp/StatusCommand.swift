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

    @OptionGroup var credential: CredentialOptions

    func validate() throws {
        guard interval >= 0.2, interval <= 3600 else { throw ValidationError("--interval: \(interval) s is out of range; use 0.2 to 3600") }
        guard !(watch && once) else { throw ValidationError("--watch and --once contradict each other; give one") }
    }

    func run() throws {
        let credential = try credential.load()
        guard watch else {
            print(try render(try report(from: connect(credential))))
            return
        }
        let screen = LiveScreen(interactive: isatty(STDOUT_FILENO) != 0 && !json)
        var client: CoordinatorClient?
        while true {
            var frame: String
            var reachable = true
            do {
                let connected = try client ?? connect(credential)
                client = connected
                frame = try render(try report(from: connected))
            } catch {
                // The coordinator may be restarting: say so, and try again next time.
                client?.close()
                client = nil
                reachable = false
                frame = "\(coordinator) unreachable: \(error); retrying every \(LiveScreen.seconds(interval))"
            }
            if json {
                // JSON lines on stdout stay JSON: the outage goes to stderr.
                if reachable { print(frame) } else { FileHandle.standardError.write(Data((frame + "\n").utf8)) }
            } else {
                screen.draw("ptp status of \(coordinator) at \(LiveScreen.clock()), every \(LiveScreen.seconds(interval)) (Ctrl-C to stop)\n\n" + frame)
            }
            fflush(nil)
            Thread.sleep(forTimeInterval: interval)
        }
    }

    private func connect(_ credential: NodeCredential) throws -> CoordinatorClient {
        let client = try CoordinatorClient(address: coordinator, credential: credential, role: .monitor)
        do { try client.connect() } catch {
            client.close()
            throw error
        }
        return client
    }

    private func report(from client: CoordinatorClient) throws -> ClusterStatus {
        switch try client.request(.statusRequest, timeout: 10) {
        case .statusReport(let status): return status
        case .error(let code, let reason): throw ConnectionError.refused(WireError(WireError.Code(rawValue: code) ?? .rejected, reason))
        case let other: throw ConnectionError.untrusted("the coordinator answered a status request with '\(other.name)'")
        }
    }

    private func render(_ status: ClusterStatus) throws -> String {
        json ? try status.jsonText() : StatusTable.render(status)
    }
}
