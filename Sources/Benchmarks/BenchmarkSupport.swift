import EditContract
import Foundation

/// A benchmark that cannot run as asked, with why.
public struct BenchmarkError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Progress on standard error (standard output holds the report).
func progress(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The CPU's model name (/proc/cpuinfo), for benchmark reports: figures mean little without it.
public enum CPUDescription {
    public static var current: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let name = line.split(separator: ":", maxSplits: 1).last
        else { return "unknown CPU" }
        return name.trimmingCharacters(in: .whitespaces)
    }
}

/// This process's peak resident memory (the high-water mark the kernel keeps).
public enum PeakMemory {
    public static func selfMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// "612 MB" or "5.7 GB".
    public static var summary: String {
        let mib = selfMiB()
        return mib < 1024 ? String(format: "%.0f MB", mib * 1.048576) : String(format: "%.1f GB", mib * 1.048576 / 1000)
    }
}

/// Other processes a benchmark runs: this executable's own child runs, and the Python peers.
enum Processes {
    /// Runs `executable` to its end: what it printed on standard output, and its exit status.
    static func standardOutput(of executable: URL, _ arguments: [String]) throws -> (Data, Int32) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (data, process.terminationStatus)
    }

    /// Runs `executable` with its output on our standard error; fails if it fails. Returns its
    /// wall seconds.
    @discardableResult
    static func run(_ executable: URL, _ arguments: [String], quiet: Bool = false) throws -> Double {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = FileHandle.standardError
        if quiet { process.standardError = FileHandle.nullDevice }
        let start = Date()
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchmarkError("\(executable.lastPathComponent) \(arguments.prefix(2).joined(separator: " ")) failed with status \(process.terminationStatus)")
        }
        return Date().timeIntervalSince(start)
    }
}

/// A script of the repository's reference stack (`reference/`), run with its Python, the JSON
/// it prints last parsed.
enum PythonPeer {
    static func run(script: String, python: String?, arguments: [String], root: URL) throws -> [String: JSONValue] {
        let interpreter = try python ?? pythonFromEnvironmentScript(root)
        let (data, status) = try Processes.standardOutput(of: URL(fileURLWithPath: interpreter), [root.appendingPathComponent(script).path] + arguments)
        guard status == 0 else { throw BenchmarkError("\(script) failed with status \(status)") }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        guard let last = lines.last, let object = (try? JSONValue.parse(Data(last.utf8)))?.objectValue else {
            throw BenchmarkError("\(script) printed no JSON result")
        }
        return object
    }

    /// The repository `executable` was built from (or the working directory).
    static func repositoryRoot(of executable: URL) -> URL {
        var folder = executable.resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("Package.swift").path) { return folder }
            folder = folder.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    static func pythonFromEnvironmentScript(_ root: URL) throws -> String {
        let (data, status) = try Processes.standardOutput(of: root.appendingPathComponent("scripts/python-env"), [])
        guard status == 0 else { throw BenchmarkError("scripts/python-env could not provide a Python with torch") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
