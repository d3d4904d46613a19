import ArgumentParser
import Coordinator
import EditContract
import Engine
import Foundation
import Logging
import Wire
import Worker

/// How tensors travel: zstd level and byte shuffling (both ends decode any setting).
struct CodecOptions: ParsableArguments {
    @Option(help: "zstd level for tensors sent (1-19; 0 sends them uncompressed).")
    var zstdLevel: Int32 = 3

    @Flag(inversion: .prefixedNo, help: "Group each float's bytes by significance before compressing.")
    var shuffle = true

    func codec() throws -> TensorCodec {
        guard (0...19).contains(zstdLevel) else { throw ValidationError("--zstd-level must be 0 to 19") }
        return TensorCodec(zstdLevel: zstdLevel == 0 ? nil : zstdLevel, shuffle: shuffle)
    }
}

/// Options shared by every command that connects or listens.
struct SecretOptions: ParsableArguments {
    @Option(help: "File holding the cluster's shared secret (default: the PTP_SECRET environment variable).")
    var secretFile: String?

    func load() throws -> SharedSecret {
        if let secretFile, let exposure = SharedSecret.exposure(of: secretFile) { note("warning: \(exposure)") }
        do { return try SharedSecret.load(file: secretFile) } catch let error as WireError { throw CommandError(error.reason) }
    }
}

func makeLogger(_ label: String, level: Logger.Level = .info) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = level
    return logger
}

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: job intake, scheduling, leases, journal, results and metrics.")

    @Option(help: "Port for workers and clients.")
    var port: Int

    @Option(help: "Address to listen on.")
    var host: String = "0.0.0.0"

    @Option(help: "Port of the Prometheus metrics endpoint (GET /metrics).")
    var metricsPort: Int?

    @Option(help: "Address the metrics endpoint listens on (default loopback: it is unauthenticated; use 0.0.0.0 for a Prometheus on another host).")
    var metricsHost: String = "127.0.0.1"

    @Option(help: "Seconds a metrics connection may stay silent before it is closed.")
    var metricsIdleTimeout: Double = 30

    @Option(help: "Folder for the journal and intermediate results (a restart resumes from it).")
    var state: String

    @Option(help: "Seconds a task may go without a heartbeat before it is given to another worker.")
    var lease: Double = 60

    @Option(help: "Attempts before a task fails.")
    var attempts: Int = 3

    @Option(help: "Edits are packed into one stage-1 task while their prompts total at most this.")
    var packPrompts: Int = 4

    @Option(help: "Seconds edits wait for a worker serving their model (at their precision) before they fail.")
    var unservedTimeout: Double = 300

    @OptionGroup var secret: SecretOptions
    @OptionGroup var codec: CodecOptions

    func run() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port: \(port) is not a TCP port; use 1 to 65535 (0 picks a free one)") }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port: \(metricsPort) is not a TCP port; use 1 to 65535")
        }
        guard lease > 0, lease <= 86_400 else { throw ValidationError("--lease must be between 0 and 86400 seconds") }
        guard attempts >= 1 else { throw ValidationError("--attempts must be at least 1") }
        guard metricsIdleTimeout > 0, metricsIdleTimeout < 86_400 else { throw ValidationError("--metrics-idle-timeout must be between 0 and 86400 seconds") }
        var settings = BrokerSettings()
        settings.leaseDuration = lease
        settings.maximumAttempts = attempts
        settings.packPrompts = max(1, packPrompts)
        guard unservedTimeout > 0 else { throw ValidationError("--unserved-timeout must be positive") }
        settings.unservedTimeout = unservedTimeout
        var configuration = CoordinatorConfiguration(
            host: host, port: port, metricsPort: metricsPort, stateDirectory: URL(fileURLWithPath: state),
            secret: try secret.load(), broker: settings, codec: try codec.codec())
        configuration.metricsIdleTimeout = .milliseconds(Int64(metricsIdleTimeout * 1000))
        configuration.metricsHost = metricsHost
        let server = CoordinatorServer(configuration: configuration, logger: makeLogger("ptp.coordinator"))
        try server.run()
    }
}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run a worker: load the models once, take tasks from the coordinator, run the Prompt-to-Prompt sampler.")

    @Option(help: "The coordinator, HOST:PORT.")
    var coordinator: String

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Option(name: .customLong("model"), help: "A model directory to serve, named in edit specs by this path (repeatable). The embedded model is always served as \"default\" when found.")
    var models: [String] = []

    @Option(help: "This node's name (default: host name and process id).")
    var nodeID: String?

    @Flag(help: "Run the two guidance halves as separate UNet calls (less memory).")
    var lowMemory = false

    @Option(help: "Seconds between heartbeats (keep well under the coordinator's --lease).")
    var heartbeat: Double = 5

    @Option(help: "A precision to serve edits at, fp32 or bf16 (repeatable; default: both where the CPU runs bf16, else fp32). Each edit names its own; the coordinator sends it to a worker serving that precision.")
    var precision: [Precision] = []

    @OptionGroup var secret: SecretOptions
    @OptionGroup var codec: CodecOptions

    func run() throws {
        for precision in precision { try precision.checkSupported() }
        let precisions = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : Array(Set(precision)).sorted { $0.rawValue > $1.rawValue }
        let threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        try ComputeThreads.validate(threads)
        guard heartbeat > 0, heartbeat <= 3600 else { throw ValidationError("--heartbeat must be between 0 and 3600 seconds") }
        let (host, port) = try CoordinatorAddress.parse(coordinator)
        var directories: [String: URL] = [:]
        if let embedded = ModelLocation.defaultModel() { directories["default"] = embedded }
        for path in models { directories[path] = URL(fileURLWithPath: path) }
        guard !directories.isEmpty else {
            throw CommandError("--model: no model to serve (the embedded model, models/shapes-world, was not found); pass --model DIR or set PTP_MODEL")
        }
        let logger = makeLogger("ptp.worker")
        logger.info("kernels", metadata: ["blas": "\(BLAS.configuration)", "onednn": "\(Engine.oneDNNConfiguration)", "threads": "\(threads)",
                                          "precisions": "\(precisions.map(\.rawValue).joined(separator: ","))"])
        let node = try WorkerNode(configuration: WorkerConfiguration(
            host: host, port: port, secret: try secret.load(), nodeID: nodeID ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())",
            threads: threads, models: directories, precisions: precisions, lowMemory: lowMemory, codec: try codec.codec(),
            heartbeatInterval: .milliseconds(Int64(heartbeat * 1000))), logger: logger)
        try node.run()
    }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a batch of edits (JSON Lines, one edit per line) and wait until every result is written.",
        discussion: """
            Results land in OUTPUT/<edit id>/source.png, target-1.png..., grid.png, with OUTPUT/manifest.jsonl \
            holding one line per edit. OUTPUT is written by the coordinator: give a path it can reach (its own \
            disk, or storage shared with it). Exits 0 only if every edit succeeded.
            """)

    @Argument(help: "The batch: one JSON edit spec per line.")
    var file: String

    @Option(help: "The coordinator, HOST:PORT.")
    var coordinator: String

    @Option(help: "Output folder (made absolute; must be reachable by the coordinator).")
    var output: String

    @Flag(help: "Return as soon as the job is accepted.")
    var detach = false

    @Option(help: "Seconds to keep trying to reach a coordinator that went away before giving up (the job goes on in its journal).")
    var reconnectTimeout: Double = 600

    @OptionGroup var secret: SecretOptions

    /// The batch, each line checked as an edit spec (errors name the line and the field), and
    /// sealed for the cluster.
    func edits() throws -> [EditEnvelope] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CommandError("cannot read \(file)") }
        var edits: [EditEnvelope] = []
        var ids = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { continue }
            do {
                var spec = try EditSpec(json: try StrictJSON.parse(trimmed))
                guard ids.insert(spec.id).inserted else { throw EditError(field: "id", problem: "'\(spec.id)' is used twice", fix: "give every edit its own id") }
                if let image = spec.image {
                    // Workers read the image themselves: a relative path means the batch file's folder.
                    let folder = URL(fileURLWithPath: file).deletingLastPathComponent()
                    let url = image.hasPrefix("/") ? URL(fileURLWithPath: image) : folder.appendingPathComponent(image)
                    guard FileManager.default.isReadableFile(atPath: url.path) else {
                        throw EditError(field: "image", problem: "'\(url.path)' cannot be read",
                                        fix: "give a PNG path relative to the batch file or absolute, on storage the workers share")
                    }
                    spec.image = url.standardizedFileURL.path
                }
                edits.append(try EditEnvelope(spec))
            } catch let error as EditError {
                throw CommandError("\(file):\(number + 1): \(error)")
            } catch let error as StrictJSON.SyntaxError {
                let column = error.column + line.prefix { $0 == " " || $0 == "\t" }.count
                throw CommandError("\(file):\(number + 1):\(column): not JSON: \(error.problem)")
            }
        }
        guard !edits.isEmpty else { throw CommandError("\(file) holds no edits") }
        return edits
    }

    func run() throws {
        let edits = try edits()
        let output = URL(fileURLWithPath: output).standardizedFileURL.path
        let secret = try secret.load()
        let client = try CoordinatorClient(address: coordinator, secret: secret, role: .client)
        try client.connect()
        try client.send(.submit(outputDirectory: output, edits: edits))
        let jobID = try acceptance(from: client, output: output)
        if detach {
            print(jobID)
            return
        }
        let report = try watch(jobID, client: client, secret: secret)
        for (id, reason) in report.failures.sorted(by: { $0.key < $1.key }) { note("edit \(id) failed: \(reason)") }
        note("job \(jobID): \(report.job.finished) finished, \(report.job.failed) failed, manifest \(output)/manifest.jsonl")
        print(jobID)
        if report.job.failed > 0 { throw ExitCode(1) }
    }

    /// The job's id once the coordinator has journaled it (which waits behind its disk).
    func acceptance(from client: CoordinatorClient, output: String) throws -> String {
        let asked = Date()
        while true {
            switch try client.next(timeout: 30) {
            case .accepted(let id, let count)?:
                note("job \(id) accepted: \(count) edits; results in \(output)")
                return id
            case .error(_, let reason)?:
                throw CommandError("the coordinator refused the job: \(reason)")
            case nil where Date().timeIntervalSince(asked) < reconnectTimeout:
                note("waiting for the coordinator to journal the job (\(Int(Date().timeIntervalSince(asked))) s so far; its disk is busy)")
            default:
                throw CommandError("no answer from the coordinator within \(Int(reconnectTimeout)) s; see ptp status before submitting again")
            }
        }
    }

    /// Follows the job to its end, reconnecting if the coordinator restarts.
    func watch(_ jobID: String, client: CoordinatorClient, secret: SharedSecret) throws -> JobProgressReport {
        let bar = ProgressBar("job \(jobID)")
        var client = client
        var delay = 0.5
        var lostSince: Date?
        var told = Set<String>()
        while true {
            do {
                try client.send(.watch(jobID: jobID))
                while true {
                    guard let message = try client.next(timeout: 30) else { continue }
                    lostSince = nil
                    switch message {
                    case .jobProgress(_, let report):
                        // Why edits cannot start, once per reason.
                        for reason in Set(report.waiting.values.map { $0.components(separatedBy: " (waiting").first ?? $0 }).sorted()
                        where told.insert(reason).inserted {
                            let edits = report.waiting.filter { $0.value.hasPrefix(reason) }.keys.sorted()
                            note("waiting: \(reason), needed by \(edits.count) edit(s) (\(edits.prefix(5).joined(separator: ", "))\(edits.count > 5 ? ", ..." : ""))")
                        }
                        bar.update(report.job.finished + report.job.failed, of: report.job.edits)
                        if report.job.state != "running" { return report }
                    case .error(_, let reason):
                        throw CommandError("the coordinator: \(reason)")
                    default:
                        continue
                    }
                }
            } catch ConnectionError.closed {
                let since = lostSince ?? Date()
                lostSince = since
                guard Date().timeIntervalSince(since) < reconnectTimeout else {
                    throw CommandError("the coordinator at \(coordinator) stayed unreachable for \(Int(reconnectTimeout)) s; job \(jobID) is in its journal "
                                       + "and goes on when it returns (see ptp status)")
                }
                note("lost the coordinator; reconnecting in \(delay) s")
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 10)
                client = try CoordinatorClient(address: coordinator, secret: secret, role: .client)
                do { try client.connect() } catch { note("reconnect failed: \(error)") }
            }
        }
    }
}
