import Foundation
import Testing

/// Runs `ptp` coordinators, workers and clients as separate processes for the integration tests,
/// as separate hosts in network namespaces when the machine allows it (root with iproute2,
/// through cluster/netns-harness), else on loopback.
final class ClusterHarness: @unchecked Sendable {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let model = root.appendingPathComponent("Tests/Fixtures/reference/p2p-sd").path

    /// The ptp executable built with the tests.
    static let ptp: URL = {
        var folder = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("ptp")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            folder = folder.deletingLastPathComponent()
        }
        return root.appendingPathComponent(".build/release/ptp")
    }()

    let directory: URL
    let secretFile: URL
    let port: Int
    let tag: String
    let namespaces: Bool
    private var processes: [String: Process] = [:]
    private var nodes: [String] = []
    /// How the coordinator, workers and clients prove themselves (default: the one secret file);
    /// the TLS tests give certificates and secrets per role.
    var coordinatorCredentials: [String]
    var workerCredentials: [String]
    var clientCredentials: [String]
    /// Where workers and clients connect, when not straight to the coordinator (a proxy).
    var addressOverride: String?

    /// A fresh cluster folder; `hosts` names the nodes to place in namespaces ("coordinator" first).
    init(name: String, hosts: [String] = [], useNamespaces: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-cluster-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        secretFile = directory.appendingPathComponent("secret")
        try Data("integration-test-secret-\(UUID().uuidString)".utf8).write(to: secretFile)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secretFile.path)
        (coordinatorCredentials, workerCredentials, clientCredentials) = (["--secret-file", secretFile.path], ["--secret-file", secretFile.path],
                                                                          ["--secret-file", secretFile.path])
        port = Int.random(in: 20000...45000)
        tag = "pt" + String(UUID().uuidString.prefix(4)).lowercased()
        var namespaced = false
        if useNamespaces && !hosts.isEmpty {
            if Self.namespacesPossible {
                // The machine can: a failure here is a failure of the harness, not a reason to
                // quietly test something else.
                let up = Self.run(["cluster/netns-harness", "up"] + hosts, environment: ["PTP_NETNS_TAG": tag])
                guard up.status == 0 else { throw HarnessError("cluster/netns-harness up failed: \(up.output)") }
                namespaced = true
                nodes = hosts
            } else {
                print("[cluster] network namespaces need root and iproute2; \(name) runs its nodes on loopback")
            }
        }
        namespaces = namespaced
    }

    deinit { stopAll() }

    /// Whether nodes can run as separate hosts here (root, with iproute2).
    static var namespacesPossible: Bool {
        getuid() == 0 && ["/usr/sbin/ip", "/sbin/ip", "/bin/ip"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The address workers and clients use to reach the coordinator.
    var coordinatorAddress: String {
        if let addressOverride { return addressOverride }
        if namespaces, let address = Self.run(["cluster/netns-harness", "address", "coordinator"], environment: ["PTP_NETNS_TAG": tag]).output
            .split(separator: "\n").first { return "\(address):\(port)" }
        return "127.0.0.1:\(port)"
    }

    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 600) -> (status: Int32, output: String, signalled: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // Output goes to a file (a pipe could fill up and stall the child).
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-run-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: capture) }
        guard FileManager.default.createFile(atPath: capture.path, contents: nil),
              let handle = try? FileHandle(forWritingTo: capture) else { return (-1, "cannot capture output", false) }
        process.standardOutput = handle
        process.standardError = handle
        do { try process.run() } catch { return (-1, "\(error)", false) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { process.terminate() }
        waitForExit(process)
        try? handle.close()
        let data = (try? Data(contentsOf: capture)) ?? Data()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), process.terminationReason == .uncaughtSignal)
    }

    /// Starts `ptp ARGUMENTS` (or `executable ARGUMENTS`) in the background, inside `host`'s
    /// namespace when there is one, its output in NAME.log; stopped by `stopAll`.
    @discardableResult
    func start(_ name: String, host: String? = nil, executable: URL? = nil, _ arguments: [String]) throws -> Process {
        let process = Process()
        let log = directory.appendingPathComponent("\(name).log")
        try Data().write(to: log)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        if namespaces, let host, nodes.contains(host) {
            process.executableURL = Self.root.appendingPathComponent("cluster/netns-harness")
            process.arguments = ["exec", host, Self.ptp.path] + arguments
            process.environment = ProcessInfo.processInfo.environment.merging(["PTP_NETNS_TAG": tag]) { $1 }
        } else {
            process.executableURL = executable ?? Self.ptp
            process.arguments = arguments
        }
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        processes[name] = process
        return process
    }

    func startCoordinator(_ extra: [String] = []) throws {
        try start("coordinator", host: "coordinator", ["coordinator", "--port", String(port), "--state", directory.appendingPathComponent("state").path]
                  + coordinatorCredentials + extra)
        try waitForCoordinator()
    }

    func startWorker(_ id: String, threads: Int = 1, extra: [String] = []) throws {
        try start(id, host: id, ["worker", "--coordinator", coordinatorAddress, "--threads", String(threads), "--node-id", id,
                                 "--model", Self.model] + workerCredentials + extra)
    }

    /// Waits until the coordinator answers a status request.
    func waitForCoordinator(timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if status().status == 0 { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw HarnessError("the coordinator did not start: \(log("coordinator"))")
    }

    func status() -> (status: Int32, output: String, signalled: Bool) {
        Self.run([Self.ptp.path, "status", "--coordinator", coordinatorAddress, "--once", "--json"] + clientCredentials, timeout: 10)
    }

    /// Waits until every worker in `ids` is connected.
    func waitForWorkers(_ ids: [String], timeout: TimeInterval = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let report = status().output
            if ids.allSatisfy({ report.contains("\"id\":\"\($0)\"") }) { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw HarnessError("workers \(ids) did not join: \(status().output)")
    }

    func submit(_ file: URL, output: URL, detach: Bool = false, timeout: TimeInterval = 600) -> (status: Int32, output: String, signalled: Bool) {
        Self.run([Self.ptp.path, "submit", file.path, "--coordinator", coordinatorAddress, "--output", output.path]
                 + clientCredentials + (detach ? ["--detach"] : []), timeout: timeout)
    }

    /// The process id of a started node.
    func pid(_ name: String) -> Int32? { processes[name]?.processIdentifier }

    /// A process's resident and peak resident megabytes (/proc/PID/status).
    static func memory(of pid: Int32) -> (resident: Int, peak: Int) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
                  let kilobytes = line.split(separator: " ").compactMap({ Int($0) }).first else { return 0 }
            return kilobytes >> 10
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    func kill(_ name: String, signal: Int32 = SIGKILL) {
        // In a namespace the harness execs ptp in place, so the pid is ptp's either way.
        guard let process = processes[name] else { return }
        Foundation.kill(process.processIdentifier, signal)
        Self.waitForExit(process)
    }

    /// Waits for `process` to end, killing it when it outlives `grace` seconds (a draining
    /// worker or a stuck child must not hold the suite past its bounds).
    static func waitForExit(_ process: Process, grace: TimeInterval = 60) {
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func log(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
    }

    func stopAll() {
        for (_, process) in processes where process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
        if namespaces {
            Self.run(["pkill", "-9", "-f", secretFile.path])
            Self.run(["cluster/netns-harness", "down"], environment: ["PTP_NETNS_TAG": tag])
        }
    }

    /// The path of a Debian tool, installing its package with apt-get when missing; nil (with
    /// the reason printed) only where it cannot be installed here.
    static func tool(_ name: String, package: String) -> String? {
        let paths = ["/usr/bin/\(name)", "/usr/local/bin/\(name)", "/bin/\(name)"]
        if let found = paths.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        var install = run(["apt-get", "install", "-y", "--no-install-recommends", package], environment: ["DEBIAN_FRONTEND": "noninteractive"], timeout: 900)
        if install.status != 0 {
            // A fresh machine may have no package lists yet.
            _ = run(["apt-get", "update"], environment: ["DEBIAN_FRONTEND": "noninteractive"], timeout: 900)
            install = run(["apt-get", "install", "-y", "--no-install-recommends", package], environment: ["DEBIAN_FRONTEND": "noninteractive"], timeout: 900)
        }
        if let found = paths.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        print("[skip] \(name) is not installed and apt-get could not install \(package): \(install.output.suffix(300))")
        return nil
    }

    /// Writes a batch of edits of the fixture model.
    func batch(_ name: String, count: Int, steps: Int = 4, size: Int = 128) throws -> URL {
        let colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
        let lines = (0..<count).map { i -> String in
            let a = colours[i % colours.count], b = colours[(i + 3) % colours.count]
            let targets = i % 3 == 2 ? "[\"a \(b) circle on a blue background\", \"a \(a) square on a blue background\"]" : "[\"a \(b) circle on a blue background\"]"
            return "{\"id\": \"edit-\(i)\", \"source\": \"a \(a) circle on a blue background\", \"targets\": \(targets), \"seed\": \(i), \"steps\": \(steps), \"height\": \(size), \"width\": \(size), \"model\": \"\(Self.model)\"}"
        }
        let url = directory.appendingPathComponent("\(name).jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        return url
    }

    /// The manifest's lines as objects.
    static func manifest(_ output: URL) -> [[String: Any]] {
        guard let text = try? String(contentsOf: output.appendingPathComponent("manifest.jsonl"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
