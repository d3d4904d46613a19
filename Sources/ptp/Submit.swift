import ArgumentParser
import EditContract
import Foundation
import Wire

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a batch of edits (JSON Lines, one edit per line) and wait until every result is written.",
        discussion: """
            Results land in OUTPUT/<edit id>/source.png, target-1.png..., grid.png, with OUTPUT/manifest.jsonl \
            holding one line per edit. OUTPUT is written by the coordinator: give a path it can reach (its own \
            disk, or storage shared with it). Exits 0 only if every edit succeeded.

            A line with "samples": N (or every line, with --samples or --prompts) is a dataset line: the coordinator \
            makes N variants of it, each scored with CLIP on a worker, keeps the best ("keep", "filter") and writes \
            OUTPUT/<line id>/<seed>_0.png, <seed>_1.png... of the kept ones, one manifest line per variant; \
            --dataset instruct-pix2pix or hf writes the InstructPix2Pix layout (and Parquet shards).
            """)

    @Argument(help: "The batch: one JSON edit spec per line.")
    var file: String?

    @Option(help: "Instead of a batch: the InstructPix2Pix recipe's caption file, one {\"input\", \"edit\", \"output\"} per line (sampled lines named 0000000, 0000001...).")
    var prompts: String?

    @Option(help: "Variants per line, for lines that do not say (default with --prompts: the recipe's 100).")
    var samples: Int?

    @Option(help: "Keep the best K variants of each line by CLIP directional similarity, for lines that do not say.")
    var keep: Int?

    @Option(help: "A recipe for lines that name none: instruct-pix2pix (its sampler, attention sharing, ranges, filter and keep).")
    var recipe: EditRecipe?

    @Option(help: "CLIP thresholds for sampled lines that do not say, as a line's \"filter\", e.g. '{\"clip_text\": 0.7, \"clip_direction\": 0.2, \"clip_image\": 0.3}' (the embedded scorer's scale; the recipe's 0.2, 0.2, 0.7 are CLIP ViT-L/14's).")
    var filter: String?

    @Option(help: "The CLIP model that scores sampled lines, for lines that do not say: a key workers load with --scorer (default: the embedded model's), or none.")
    var scorer: String?

    @Option(help: "The model of caption-file lines (a --model key of the workers; default: the embedded model).")
    var model: String?

    @Option(help: "Denoising steps, for lines that do not say (default: the recipe's or the model's).")
    var steps: Int?

    @Flag(inversion: .prefixedNo, help: "Run the embedded model's super-resolution stage, for lines that do not say (default: on).")
    var superResolution: Bool?

    @Option(help: "Seed of the first caption-file line (the next ones count up).")
    var seed: UInt64 = 0

    @Option(help: "Layout of a dataset job's output: ptp, instruct-pix2pix (its generated dataset's folders, seeds.json) or hf (that, plus Parquet shards under data/).")
    var dataset: OutputLayout = .ptp

    @Option(help: "The coordinator, HOST:PORT.")
    var coordinator: String

    @Option(help: "Output folder, written by the coordinator: under its --output-root when it has one (a relative path is relative to that root), else a path it can reach (a relative one is made absolute here).")
    var output: String

    @Flag(help: "Return as soon as the job is accepted.")
    var detach = false

    @Option(help: "Seconds to keep trying to reach a coordinator that went away before giving up (the job goes on in its journal).")
    var reconnectTimeout: Double = 600

    @OptionGroup var credential: CredentialOptions

    func validate() throws {
        guard (file == nil) != (prompts == nil) else { throw ValidationError("give a batch file or --prompts FILE (one of them)") }
        if let samples, !(1...SamplingPlan.maximumSamples).contains(samples) { throw ValidationError("--samples must be from 1 to \(SamplingPlan.maximumSamples)") }
        if let keep, keep < 1 { throw ValidationError("--keep must be 1 or more") }
        if file != nil && (model != nil || seed != 0) { throw ValidationError("--model and --seed apply to --prompts files; a batch's lines say their own") }
    }

    /// --filter's JSON object (its keys and values are checked with each line's).
    static func filterObject(_ text: String) throws -> JSONValue {
        guard let value = try? StrictJSON.parse(text), value.objectValue != nil else {
            throw ValidationError("--filter: '\(text)' is not a JSON object; write e.g. '{\"clip_text\": 0.7, \"clip_direction\": 0.2, \"clip_image\": 0.3}'")
        }
        return value
    }

    /// The batch, each line checked as an edit spec (errors name the line and the field), and
    /// sealed for the cluster.
    func edits() throws -> (edits: [EditEnvelope], pictures: [String: URL]) {
        var defaults = LineDefaults(samples: samples, keep: keep, recipe: recipe?.rawValue, scorer: scorer, model: model,
                                    steps: steps, superResolution: superResolution, filter: try filter.map(Self.filterObject))
        if let prompts {
            if defaults.samples == nil && defaults.recipe == nil { defaults.samples = 100 }
            return (try BatchFile.captions(file: prompts, defaults: defaults, seed: seed), [:])
        }
        return try BatchFile.edits(file: file ?? "", defaults: defaults)
    }
}

extension Submit {
    func run() throws {
        let (edits, pictures) = try edits()
        let credential = try credential.load()
        let client = try CoordinatorClient(address: coordinator, credential: credential, role: .client)
        try client.connect()
        try PictureUpload(pictures: pictures).send(through: client)
        try client.send(.submit(outputDirectory: output, layout: dataset, edits: edits, workingDirectory: FileManager.default.currentDirectoryPath))
        let (jobID, output) = try acceptance(from: client)
        if detach {
            print(jobID)
            return
        }
        let report = try watch(jobID, client: client, credential: credential)
        for (id, reason) in report.failures.sorted(by: { $0.key < $1.key }) { note("edit \(id) failed: \(reason)") }
        if let variants = report.job.variants { note("job \(jobID): \(variants.summary)") }
        note("job \(jobID): \(report.job.finished) finished, \(report.job.failed) failed, manifest \(output)/manifest.jsonl")
        print(jobID)
        if report.job.failed > 0 { throw ExitCode(1) }
    }

    /// The job's id once the coordinator has journaled it (which waits behind its disk).
    func acceptance(from client: CoordinatorClient) throws -> (jobID: String, output: String) {
        let asked = Date()
        while true {
            switch try client.next(timeout: 30) {
            case .accepted(let id, let count, let output)?:
                note("job \(id) accepted: \(count) \(dataset == .ptp && samples == nil && prompts == nil ? "edits" : "lines"); results in \(output)")
                return (id, output)
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
    func watch(_ jobID: String, client: CoordinatorClient, credential: NodeCredential) throws -> JobProgressReport {
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
                        if let variants = report.job.variants {
                            let rate = variants.done > 0 ? variants.rejectedCount * 100 / variants.done : 0
                            bar.update(variants.done, of: variants.total, detail: "  \(variants.kept) kept, \(rate)% rejected")
                        } else {
                            bar.update(report.job.finished + report.job.failed, of: report.job.edits)
                        }
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
                client = try CoordinatorClient(address: coordinator, credential: credential, role: .client)
                do { try client.connect() } catch { note("reconnect failed: \(error)") }
            }
        }
    }
}
