import EditContract
import Evaluation
import Foundation

/// Images per minute of a local cluster (`ptp bench cluster`): the same batch of two-prompt
/// edits through 1, 2... workers, each a process of this executable, as users run them.
public struct ClusterThroughput {
    public var workers: [Int]
    public var threads: Int
    public var edits: Int
    public var modelPath: String
    public var steps: Int?
    /// This executable (its coordinator, workers and submit).
    public var executable: URL

    public init(workers: [Int], threads: Int, edits: Int, modelPath: String, steps: Int?, executable: URL) {
        (self.workers, self.threads, self.edits, self.modelPath, self.steps, self.executable) = (workers, threads, edits, modelPath, steps, executable)
    }

    /// One line per worker count, through `report`.
    public func run(report: (String) -> Void) throws {
        let executable = self.executable.path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-cluster-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let secret = folder.appendingPathComponent("secret")
        try Data("cluster-benchmark-secret-\(UUID().uuidString)".utf8).write(to: secret)
        let colours = ShapesVocabulary.colours, shapes = ShapesVocabulary.shapes
        var lines: [String] = []
        for i in 0..<edits {
            let (a, b, shape) = (colours[i % colours.count], colours[(i + 3) % colours.count], shapes[i % shapes.count])
            var object: [String: JSONValue] = [
                "id": .string("e\(i)"), "source": .string("a \(a) \(shape) on a \(b) background"),
                "targets": .array([.string("a \(colours[(i + 5) % colours.count]) \(shape) on a \(b) background")]),
                "seed": .int(i), "model": .string(modelPath),
            ]
            if let steps { object["steps"] = .int(steps) }
            lines.append(String(decoding: try JSONEncoder().encode(JSONValue.object(object)), as: UTF8.self))
        }
        let batch = folder.appendingPathComponent("batch.jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: batch)
        report("batch: \(edits) edits x 2 prompts, model \(modelPath), \(threads) thread(s) per worker")
        report("workers  seconds  images/min  speed-up")
        var baseline: Double?
        for count in workers {
            let port = Int.random(in: 30000...50000)
            var processes: [Process] = []
            func launch(_ arguments: [String]) throws {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                processes.append(process)
            }
            defer { for process in processes where process.isRunning { process.terminate(); process.waitUntilExit() } }
            try launch(["coordinator", "--port", String(port), "--state", folder.appendingPathComponent("state-\(count)").path, "--secret-file", secret.path])
            for w in 0..<count {
                try launch(["worker", "--coordinator", "127.0.0.1:\(port)", "--threads", String(threads), "--node-id", "bench-\(w)",
                            "--model", modelPath, "--secret-file", secret.path])
            }
            // The clock starts once every worker has loaded its model and joined.
            try waitForWorkers((0..<count).map { "bench-\($0)" }, port: port, secret: secret, executable: executable)
            let submit = Process()
            submit.executableURL = URL(fileURLWithPath: executable)
            submit.arguments = ["submit", batch.path, "--coordinator", "127.0.0.1:\(port)", "--output", folder.appendingPathComponent("out-\(count)").path,
                                "--secret-file", secret.path]
            let log = folder.appendingPathComponent("submit-\(count).log")
            try Data().write(to: log)
            let handle = try FileHandle(forWritingTo: log)
            submit.standardOutput = handle
            submit.standardError = handle
            let start = Date()
            try submit.run()
            submit.waitUntilExit()
            let seconds = Date().timeIntervalSince(start)
            try? handle.close()
            guard submit.terminationStatus == 0 else {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw BenchmarkError("the batch failed with \(count) workers:\n\(text.split(separator: "\n").suffix(5).joined(separator: "\n"))")
            }
            let rate = Double(edits * 2) / seconds * 60
            baseline = baseline ?? rate
            report(String(format: "%7d  %7.1f  %10.1f  %8.2fx", count, seconds, rate, rate / (baseline ?? rate)))
        }
    }

    /// Polls `ptp status` until the coordinator answers and lists every worker of `ids`.
    func waitForWorkers(_ ids: [String], port: Int, secret: URL, executable: String, timeout: TimeInterval = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let status = Process()
            status.executableURL = URL(fileURLWithPath: executable)
            status.arguments = ["status", "--coordinator", "127.0.0.1:\(port)", "--once", "--json", "--secret-file", secret.path]
            let pipe = Pipe()
            status.standardOutput = pipe
            status.standardError = FileHandle.nullDevice
            try status.run()
            let report = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            status.waitUntilExit()
            if status.terminationStatus == 0, ids.allSatisfy({ report.contains("\"id\":\"\($0)\"") }) { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw BenchmarkError("workers \(ids) did not join the benchmark's coordinator within \(Int(timeout)) s")
    }
}
