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

    @Option(help: "Megabytes one picture a client sends may be (pictures travel with batches).")
    var maxPictureMb = 64

    @Option(help: "Megabytes of pictures one job may name in all.")
    var maxJobPictureMb = 4096

    @Option(help: "Megabytes of pictures one client's unfinished jobs may name in all.")
    var maxClientPictureMb = 16384

    @Option(help: "Kilobytes one batch line (an edit spec) may be.")
    var maxLineKb = 64

    @Option(help: "Edits (or sampled lines) one job may hold.")
    var maxJobEdits = 1_000_000

    @Option(help: "Edits one client's unfinished jobs may hold in all (a client: the name in its certificate under mutual TLS, else its address).")
    var maxClientQueuedEdits = 500_000

    @Option(help: "Edits all unfinished jobs may hold together: what bounds this process's memory under a flood of submissions.")
    var maxQueuedEdits = 1_000_000

    @Option(help: "The folder every job's output goes under: --output is a path inside it (relative ones are relative to it); paths outside, '..' and symbolic links out of it are refused. Without it, clients may name any folder this user can write.")
    var outputRoot: String?

    @OptionGroup var credentials: CoordinatorCredentialOptions
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
        guard (1...(CarriedPicture.maximumBytes >> 20)).contains(maxPictureMb) else {
            throw ValidationError("--max-picture-mb must be from 1 to \(CarriedPicture.maximumBytes >> 20) (the protocol's bound)")
        }
        guard maxJobPictureMb >= 1, maxJobPictureMb <= 1 << 24 else { throw ValidationError("--max-job-picture-mb must be from 1 to 16777216") }
        (settings.maximumPictureBytes, settings.maximumPictureBytesPerJob) = (maxPictureMb << 20, maxJobPictureMb << 20)
        guard maxClientPictureMb >= 1, maxClientPictureMb <= 1 << 24 else { throw ValidationError("--max-client-picture-mb must be from 1 to 16777216") }
        guard (1...(EditEnvelope.maximumSpecLength >> 10)).contains(maxLineKb) else {
            throw ValidationError("--max-line-kb must be from 1 to \(EditEnvelope.maximumSpecLength >> 10) (the protocol's bound)")
        }
        for (flag, value) in [("--max-job-edits", maxJobEdits), ("--max-client-queued-edits", maxClientQueuedEdits), ("--max-queued-edits", maxQueuedEdits)] {
            guard (1...100_000_000).contains(value) else { throw ValidationError("\(flag) must be from 1 to 100000000") }
        }
        settings.maximumPictureBytesPerClient = maxClientPictureMb << 20
        settings.maximumLineBytes = maxLineKb << 10
        (settings.maximumJobEdits, settings.maximumClientQueuedEdits, settings.maximumQueuedEdits) = (maxJobEdits, maxClientQueuedEdits, maxQueuedEdits)
        let stateFolder = try Self.stateFolder(state)
        let root: OutputRoot?
        do { root = try outputRoot.map(OutputRoot.init) } catch { throw CommandError("\(error)") }
        let (roles, tls) = try credentials.load()
        var configuration = CoordinatorConfiguration(
            host: host, port: port, metricsPort: metricsPort, stateDirectory: stateFolder,
            credentials: roles, tls: tls, outputRoot: root, broker: settings, codec: try codec.codec())
        configuration.metricsIdleTimeout = .milliseconds(Int64(metricsIdleTimeout * 1000))
        configuration.metricsHost = metricsHost
        let logger = makeLogger("ptp.coordinator")
        if roles.workersAndClientsShareASecret {
            logger.warning("workers and clients sign in with one secret, so a worker's credential can also submit jobs and read their progress; give --worker-secret-file and --client-secret-file to keep them apart")
        }
        if root == nil {
            logger.warning("no --output-root: clients may have results written to any folder this user can write; give --output-root DIR to confine them")
        }
        let server = CoordinatorServer(configuration: configuration, logger: logger)
        try server.run()
    }

    /// `--state`: a folder, made when missing; a file there, or one that cannot be made, is an
    /// error with the fix (not a dump of the system's error).
    static func stateFolder(_ path: String) throws -> URL {
        let folder = URL(fileURLWithPath: path).standardizedFileURL
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw CommandError("--state: \(folder.path) is a file; give a folder for the journal and intermediate results (it is made when missing)")
            }
        } else {
            do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
                throw CommandError("--state: cannot make the folder \(folder.path) (\((error as NSError).localizedFailureReason ?? error.localizedDescription)); "
                                   + "give a folder this user can write")
            }
        }
        guard FileManager.default.isWritableFile(atPath: folder.path) else {
            throw CommandError("--state: this user cannot write in \(folder.path); give a folder it can (chown, or another path)")
        }
        return folder
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

    @Option(name: .customLong("scorer"), help: "A CLIP model folder (as transformers' CLIPModel saves it) that scores sampled lines naming it by this path (repeatable). The embedded model's scorer is always served as \"default\" when found.")
    var scorers: [String] = []

    @Option(help: "This node's name (default: host name and process id).")
    var nodeID: String?

    @Flag(help: "Run the two guidance halves as separate UNet calls (less memory).")
    var lowMemory = false

    @Option(help: "Seconds between heartbeats (keep well under the coordinator's --lease).")
    var heartbeat: Double = 5

    @Option(help: "Megabytes of real pictures' inversions kept for later edits of the same picture (0: none; an SD 1.5 inversion at 512 px and 50 steps is 3.3 MB).")
    var inversionCacheMb = 1024

    @Option(help: "A precision to serve edits at, fp32 or bf16 (repeatable; default: both where the CPU runs bf16, else fp32). Each edit names its own; the coordinator sends it to a worker serving that precision.")
    var precision: [Precision] = []

    @OptionGroup var credential: CredentialOptions
    @OptionGroup var codec: CodecOptions

    func run() throws {
        for precision in precision { try precision.checkSupported() }
        let precisions = precision.isEmpty ? Precision.allCases.filter(\.isSupported) : Array(Set(precision)).sorted { $0.rawValue > $1.rawValue }
        let threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        try ComputeThreads.validate(threads)
        guard heartbeat > 0, heartbeat <= 3600 else { throw ValidationError("--heartbeat must be between 0 and 3600 seconds") }
        guard (0...(1 << 20)).contains(inversionCacheMb) else { throw ValidationError("--inversion-cache-mb must be from 0 to 1048576") }
        let (host, port) = try CoordinatorAddress.parse(coordinator)
        var directories: [String: URL] = [:]
        if let embedded = ModelLocation.defaultModel() { directories["default"] = embedded }
        for path in models { directories[path] = URL(fileURLWithPath: path) }
        var scorerDirectories: [String: URL] = [:]
        if let embedded = ModelLocation.defaultModel()?.appendingPathComponent("scorer"),
           FileManager.default.fileExists(atPath: embedded.appendingPathComponent("config.json").path) {
            scorerDirectories[SamplingPlan.defaultScorer] = embedded
        }
        for path in scorers { scorerDirectories[path] = URL(fileURLWithPath: path) }
        guard !directories.isEmpty else {
            throw CommandError("--model: no model to serve (the embedded model, models/shapes-world, was not found); pass --model DIR or set PTP_MODEL")
        }
        let logger = makeLogger("ptp.worker")
        logger.info("kernels", metadata: ["blas": "\(BLAS.configuration)", "onednn": "\(Engine.oneDNNConfiguration)", "threads": "\(threads)",
                                          "precisions": "\(precisions.map(\.rawValue).joined(separator: ","))"])
        let node = try WorkerNode(configuration: WorkerConfiguration(
            host: host, port: port, credential: try credential.load(), nodeID: nodeID ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())",
            threads: threads, models: directories, scorers: scorerDirectories, precisions: precisions, lowMemory: lowMemory,
            inversionCacheBytes: inversionCacheMb << 20, codec: try codec.codec(), heartbeatInterval: .milliseconds(Int64(heartbeat * 1000))), logger: logger)
        try node.run()
    }
}
