import EditContract
import Evaluation
import Foundation
import Wire

/// A dataset job's weight on the coordinator (`ptp bench scale`): LINES sampled lines of
/// SAMPLES variants submitted to a coordinator process with no worker, so every variant stays
/// queued; how long the job takes to be accepted, what the coordinator holds resident, how
/// fast it answers status requests, and how soon it answers again after kill -9.
public struct DatasetScale {
    public var lines: Int
    public var samples: Int
    /// Status requests timed.
    public var statusCalls: Int
    /// This executable (its coordinator and submit).
    public var executable: URL

    public init(lines: Int, samples: Int, statusCalls: Int, executable: URL) {
        (self.lines, self.samples, self.statusCalls, self.executable) = (lines, samples, statusCalls, executable)
    }

    public func run(report: (String) -> Void) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-scale-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let secretText = "scale-benchmark-secret-\(UUID().uuidString)"
        let secretFile = folder.appendingPathComponent("secret")
        try Data(secretText.utf8).write(to: secretFile)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secretFile.path)
        let secret = try SharedSecret.load(file: secretFile.path)
        let batch = try writeBatch(in: folder)
        report("CPU: \(CPUDescription.current)")
        report("job: \(lines) lines x \(samples) variants = \(lines * samples) variants (\(Self.megabytes(batch)) batch file), no worker connected")

        let port = Int.random(in: 30000...50000)
        let arguments = ["coordinator", "--port", String(port), "--state", folder.appendingPathComponent("state").path, "--secret-file", secretFile.path]
        var coordinator = try launch(arguments, log: folder.appendingPathComponent("coordinator-0.log"))
        defer { if coordinator.isRunning { kill(coordinator.processIdentifier, SIGKILL); coordinator.waitUntilExit() } }
        _ = try firstAnswer(port: port, secret: secret, within: 60)
        let idle = Self.memory(of: coordinator.processIdentifier)

        let submitStart = Date()
        let submit = try launch(["submit", batch.path, "--coordinator", "127.0.0.1:\(port)", "--output", folder.appendingPathComponent("out").path,
                                 "--secret-file", secretFile.path, "--detach"], log: folder.appendingPathComponent("submit.log"))
        submit.waitUntilExit()
        let accepted = Date().timeIntervalSince(submitStart)
        guard submit.terminationStatus == 0 else {
            throw BenchmarkError("ptp submit failed: \((try? String(contentsOf: folder.appendingPathComponent("submit.log"), encoding: .utf8)) ?? "")")
        }
        report(String(format: "accepted (ptp submit --detach, start to exit): %.2f s", accepted))

        let queued = try status(port: port, secret: secret)
        let held = Self.memory(of: coordinator.processIdentifier)
        report("coordinator resident: \(idle.resident) MB before the job, \(held.resident) MB with it queued (peak \(held.peak) MB); "
               + "status shows \(queued.queuedTasks) variants queued")

        var latencies: [Double] = []
        for _ in 0..<statusCalls {
            let start = Date()
            _ = try status(port: port, secret: secret)
            latencies.append(Date().timeIntervalSince(start) * 1000)
        }
        latencies.sort()
        report(String(format: "status (connect, authenticate, request; %d calls): p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                      statusCalls, Self.percentile(latencies, 0.5), Self.percentile(latencies, 0.99), latencies.last ?? 0))
        var commandTimes: [Double] = []
        for _ in 0..<5 {
            let start = Date()
            let command = try launch(["status", "--coordinator", "127.0.0.1:\(port)", "--once", "--secret-file", secretFile.path],
                                     log: folder.appendingPathComponent("status.log"))
            command.waitUntilExit()
            commandTimes.append(Date().timeIntervalSince(start) * 1000)
        }
        report(String(format: "ptp status --once as a process (5 runs, start to exit): median %.0f ms", commandTimes.sorted()[2]))

        kill(coordinator.processIdentifier, SIGKILL)
        coordinator.waitUntilExit()
        let restartStart = Date()
        coordinator = try launch(arguments, log: folder.appendingPathComponent("coordinator-1.log"))
        let restored = try firstAnswer(port: port, secret: secret, within: 300)
        let restart = Date().timeIntervalSince(restartStart)
        let after = Self.memory(of: coordinator.processIdentifier)
        report(String(format: "restart after kill -9 (start to first status answer): %.2f s; %d variants queued again; resident %d MB",
                      restart, restored.queuedTasks, after.resident))
        guard restored.queuedTasks == queued.queuedTasks else {
            throw BenchmarkError("the restarted coordinator has \(restored.queuedTasks) variants queued, not \(queued.queuedTasks)")
        }
    }

    /// LINES caption pairs of the shapes world, SAMPLES variants each, in the recipe.
    func writeBatch(in folder: URL) throws -> URL {
        let colours = ShapesVocabulary.colours, shapes = ShapesVocabulary.shapes
        var text = ""
        text.reserveCapacity(lines * 220)
        for i in 0..<lines {
            let (a, b, shape) = (colours[i % colours.count], colours[(i / colours.count) % colours.count], shapes[(i / 7) % shapes.count])
            let target = colours[(i + 3) % colours.count]
            text += #"{"id": "line-\#(i)", "source": "a \#(a) \#(shape) on a \#(b) background", "targets": ["a \#(target) \#(shape) on a \#(b) background"], "#
                + #""instruction": "make it \#(target)", "seed": \#(i), "samples": \#(samples), "recipe": "instruct-pix2pix"}"# + "\n"
        }
        let url = folder.appendingPathComponent("batch.jsonl")
        try Data(text.utf8).write(to: url)
        return url
    }

    func launch(_ arguments: [String], log: URL) throws -> Process {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        try Data().write(to: log)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    func status(port: Int, secret: SharedSecret) throws -> ClusterStatus {
        let client = CoordinatorClient(host: "127.0.0.1", port: port, credential: NodeCredential(secret: secret), role: .client)
        try client.connect(timeout: 10)
        defer { client.close() }
        guard case .statusReport(let status) = try client.request(.statusRequest, timeout: 30) else {
            throw BenchmarkError("the coordinator did not answer a status request with a report")
        }
        return status
    }

    /// The first status a starting coordinator gives.
    func firstAnswer(port: Int, secret: SharedSecret, within seconds: TimeInterval) throws -> ClusterStatus {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let status = try? status(port: port, secret: secret) { return status }
            guard Date() < deadline else { throw BenchmarkError("the coordinator did not answer within \(Int(seconds)) s") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// A process's resident and peak resident memory in MB (/proc/PID/status).
    static func memory(of pid: Int32) -> (resident: Int, peak: Int) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
                  let kilobytes = line.split(separator: " ").compactMap({ Int($0) }).first else { return 0 }
            return kilobytes * 1024 / 1_000_000
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    static func megabytes(_ url: URL) -> String {
        let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        return String(format: "%.1f MB", Double(bytes) / 1e6)
    }
}
