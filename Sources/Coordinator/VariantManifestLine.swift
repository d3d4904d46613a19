import EditContract
import Foundation

/// A sampled line's lines in its folder's manifest.jsonl (appended once the line ends): first
/// the line's own, as an edit's looks (id, job, status, spec) with its counts, then one per
/// variant with its seed, drawn values, scores, verdict and, when written, its pictures.
enum VariantManifestLine {
    static func lines(of line: SampledLine, job: JobRecord, tally: VariantTally, kept: Set<Int>, ranks: [Int: Int],
                      layout: OutputLayout, finishedAt: Date) -> [String] {
        let time = ISO8601DateFormatter().string(from: finishedAt)
        var summary: [String: JSONValue] = [
            "id": .string(line.id), "job": .string(job.id), "status": .string("ok"), "samples": .int(line.plan.samples),
            "kept": .int(tally.kept), "failed": .int(tally.failed), "rejected": .object(tally.rejected.mapValues { .int($0) }),
            "finished_at": .string(time),
        ]
        if let instruction = line.plan.instruction { summary["instruction"] = .string(instruction) }
        var texts = [text(summary, spec: line.envelope.spec)]
        for record in line.results.values.sorted(by: { $0.index < $1.index }) {
            var fields: [String: JSONValue] = ["id": .string(line.id), "job": .string(job.id), "variant": .int(record.index),
                                               "worker": .string(record.worker), "seconds": .double(record.seconds), "finished_at": .string(time)]
            if let error = record.error {
                (fields["status"], fields["error"]) = (.string("failed"), .string(error))
                texts.append(text(fields))
                continue
            }
            fields["seed"] = .int(Int(clamping: record.seed))
            fields["values"] = .object(record.values.mapValues { .double($0) })
            if let scores = record.scores {
                (fields["clip_text_0"], fields["clip_text_1"]) = (.double(scores.text0), .double(scores.text1))
                (fields["clip_direction"], fields["clip_image"]) = (.double(scores.direction), .double(scores.image))
            }
            if let rank = ranks[record.index] { fields["rank"] = .int(rank) }
            let isKept = kept.contains(record.index)
            fields["status"] = .string(isKept ? "kept" : "rejected")
            if !isKept {
                let reason = record.scores.flatMap { line.plan.filter.rejection(of: $0)?.rawValue } ?? "ranked"
                fields["reason"] = .string(reason)
            }
            if isKept || (line.plan.keepRejected && record.staged) {
                fields["images"] = .array(line.envelope.prompts.indices.map {
                    .string(layout.picturePath(line: line.id, seed: record.seed, index: $0, kept: isKept))
                })
            }
            if let run = record.run {
                fields["model"] = .string(run.model)
                fields["mode"] = .string(run.mode.rawValue)
                fields["settings"] = settingsJSON(run.settings)
            }
            texts.append(text(fields))
        }
        return texts
    }

    /// The one line of a line that failed as a whole.
    static func failure(of line: SampledLine, job: JobRecord) -> [String] {
        var fields: [String: JSONValue] = ["id": .string(line.id), "job": .string(job.id), "status": .string("failed"),
                                           "error": .string(line.error ?? "failed"), "samples": .int(line.plan.samples)]
        if let finished = line.finishedAt { fields["finished_at"] = .string(ISO8601DateFormatter().string(from: finished)) }
        return [text(fields, spec: line.envelope.spec)]
    }

    static func settingsJSON(_ settings: EditRun.Settings) -> JSONValue {
        var object: [String: JSONValue] = ["steps": .int(settings.steps), "guidance": .double(settings.guidance),
                                           "height": .int(settings.height), "width": .int(settings.width)]
        if let scheduler = settings.scheduler { object["scheduler"] = .string(scheduler) }
        if let precision = settings.precision { object["precision"] = .string(precision.rawValue) }
        return .object(object)
    }

    /// One JSON object on one line, keys sorted; `spec` spliced in as the client sealed it
    /// (or as a string, when it is not one compact object).
    static func text(_ fields: [String: JSONValue], spec: String? = nil) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var parts: [(key: String, text: String)] = fields.map { key, value in
            (key, (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "null")
        }
        if let spec {
            parts.append(("spec", CompactJSONObject.matches(spec) ? spec : (try? String(decoding: encoder.encode(spec), as: UTF8.self)) ?? "null"))
        }
        return "{" + parts.sorted { $0.key < $1.key }.map { part in
            ((try? String(decoding: encoder.encode(part.key), as: UTF8.self)) ?? "\"\"") + ":" + part.text
        }.joined(separator: ",") + "}"
    }
}

extension OutputLayout {
    /// Where picture `index` (0 the source) of a variant goes, relative to the output folder:
    /// kept pairs in the line's folder, rejected ones written on request under rejected/.
    func picturePath(line: String, seed: UInt64, index: Int, kept: Bool) -> String {
        let name = "\(seed)_\(index).\(self == .ptp ? "png" : "jpg")"
        return (kept ? "" : "rejected/") + "\(line)/\(name)"
    }
}
