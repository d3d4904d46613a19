import EditContract
import Foundation
import Wire

/// Sampled lines: variants handed out lazily as workers ask, each result committed once by its
/// (line, variant), the best of a line chosen once all are in, then its pictures and manifest
/// lines written.
extension TaskBroker {
    /// A task for the next variant waiting under `model`, registered as leased work; nil when no
    /// line there has one left.
    func nextVariantTask(model: String) -> TaskRecord? {
        while let reference = queues[model]?.firstLine {
            if let job = jobs[reference.job], let line = job.lines[reference.line], line.state == .pending, let index = line.nextVariant() {
                let task = TaskRecord(id: "\(job.id).\(line.id).v\(index)", job: job.id, kind: .variants, edits: [line.id], image: index, model: model)
                task.queuedAt = job.created
                tasks[task.id] = task
                return task
            }
            queues[model]?.dropFirstLine()
        }
        return nil
    }

    /// The line's variants wait for workers.
    func enqueue(_ line: SampledLine) {
        queues[line.capability, default: ReadyTasks()].append(LineReference(job: line.job, line: line.id))
    }

    /// Checks a variant's result and asks storage to keep it: its pictures staged only when
    /// they may end among the kept (or every picture is written), so a line stages a handful,
    /// not its hundred.
    func commitVariant(_ task: TaskRecord, of job: JobRecord, _ outcome: VariantOutcome, session: String, node: String) throws {
        guard let line = job.lines[task.edits[0]], line.state == .pending, !line.done.contains(task.image) else {
            // Its line ended meanwhile (failed), or this variant is in already: nothing to keep.
            task.state = .done
            tasks[task.id] = nil
            return
        }
        var record: VariantRecord
        var pictures: [TensorPayload] = []
        switch outcome {
        case .failed(let reason):
            record = VariantRecord(index: task.image, seed: 0, values: [:], run: nil, worker: node, seconds: 0, scores: nil, error: reason, staged: false)
        case .ran(let variant):
            guard variant.draw.index == task.image else { throw ResultRefusal("a result for variant \(variant.draw.index) of a task for variant \(task.image)") }
            guard (variant.scores != nil) == (line.plan.scorer != nil) else {
                throw ResultRefusal(line.plan.scorer == nil ? "scores for a line with no scorer" : "no scores for a line scored by \(line.plan.scorer ?? "")")
            }
            let values = Dictionary(uniqueKeysWithValues: variant.draw.values.map { ($0.key.rawValue, $0.value) })
            record = VariantRecord(index: task.image, seed: variant.draw.seed, values: values, run: variant.run, worker: node,
                                   seconds: variant.seconds, scores: variant.scores, error: nil, staged: false)
            if line.plan.keepRejected || line.mayBeKept(record) {
                guard variant.pictures.count == line.envelope.prompts.count else {
                    throw ResultRefusal("variant \(task.image) of \(line.id) came with \(variant.pictures.count) pictures; \(line.envelope.prompts.count) are wanted")
                }
                for picture in variant.pictures where picture.elementType != .uint8 || picture.shape.count != 3 || picture.shape[2] != 3 {
                    throw ResultRefusal("a picture of variant \(task.image) of \(line.id) has shape \(picture.shape)")
                }
                pictures = variant.pictures
                record.staged = true
            }
        }
        commits[task.id] = PendingCommit(session: session, node: node, change: .variant(line: line, record: record))
        task.state = .committing
        output.append(.store(.commitVariant(taskID: task.id, job: job.id, line: line.id, index: task.image, pictures: pictures,
                                            change: JournalChange(variants: [JournalVariant(job: job.id, line: line.id, record: record)]))))
    }

    /// A variant's result is durable: it counts, and its line ends when it was the last.
    func committedVariant(_ record: VariantRecord, of line: SampledLine, in job: JobRecord, session: String, node: String) {
        guard line.done.insert(record.index) else { return }
        line.results[record.index] = record
        var change = VariantTally()
        change.done = 1
        if record.error != nil {
            change.failed = 1
        } else if let scores = record.scores, let reason = line.plan.filter.rejection(of: scores) {
            change.rejected[reason.rawValue] = 1
        }
        line.tally.add(change)
        job.tally.add(change)
        if record.error == nil {
            let images = line.envelope.prompts.count
            workers[session]?.noteImages(images, at: now())
            for _ in 0..<images { output.append(.event(.imageFinished(node: node, at: now()))) }
            metrics.imagesCompleted(node: node).increment(by: images)
        }
        if line.allIn { complete(line, in: job) }
        output.append(.jobChanged(job.id))
    }

    /// Every variant of the line is in: the best are chosen, their pictures (and the others',
    /// when asked) and the line's manifest lines written, then it is recorded finished.
    func complete(_ line: SampledLine, in job: JobRecord) {
        guard line.writing == nil else { return }
        let finishedAt = now()
        line.writing = finishedAt
        let kept = line.kept()
        let keptIndices = Set(kept.map(\.index))
        let passing = line.results.values.filter { $0.error == nil && line.plan.passes($0.scores) }.sorted(by: SampledLine.better)
        let ranks = Dictionary(uniqueKeysWithValues: passing.enumerated().map { ($1.index, $0 + 1) })
        var pictures = kept.map { LineOutputs.Pictures(record: $0, kept: true) }
        if line.plan.keepRejected {
            pictures += line.results.values.filter { $0.staged && !keptIndices.contains($0.index) }.sorted { $0.index < $1.index }
                .map { LineOutputs.Pictures(record: $0, kept: false) }
        }
        var tally = line.tally
        tally.kept = kept.count
        if passing.count > kept.count { tally.rejected["ranked", default: 0] += passing.count - kept.count }
        let texts = VariantManifestLine.lines(of: line, job: job, tally: tally, kept: keptIndices, ranks: ranks, layout: job.layout, finishedAt: finishedAt)
        let row = JournalLine(job: job.id, envelope: line.envelope, state: .finished, error: nil, finishedAt: finishedAt, tally: tally)
        output.append(.store(.writeLine(LineOutputs(job: job.id, line: line.id, folder: job.output, layout: job.layout, prompts: line.envelope.prompts,
                                                    instruction: line.plan.instruction, pictures: pictures, manifest: texts,
                                                    change: JournalChange(lines: [row])))))
    }

    func lineWritten(job jobID: String, line lineID: String) {
        guard let job = jobs[jobID], let line = job.lines[lineID], let finishedAt = line.writing else { return }
        line.writing = nil
        guard line.state == .pending else { return lineEnded(line, in: job) }
        line.state = .finished
        line.finishedAt = finishedAt
        let kept = line.kept().count
        let passing = line.results.values.filter { $0.error == nil && line.plan.passes($0.scores) }.count
        var change = VariantTally()
        change.kept = kept
        if passing > kept { change.rejected["ranked"] = passing - kept }
        line.tally.add(change)
        job.tally.add(change)
        line.results.removeAll()
        settle(line.id, in: job)
        output.append(.event(.lineFinished(job: jobID, line: lineID, at: finishedAt)))
        metrics.editLatency.recordSeconds(finishedAt.timeIntervalSince(job.created))
        lineEnded(line, in: job)
    }

    func lineNotWritten(job jobID: String, line lineID: String, reason: String, transient: Bool) {
        guard let job = jobs[jobID], let line = job.lines[lineID], line.writing != nil else { return }
        line.writing = nil
        guard line.state == .pending else {
            // A failed line's record: the journal still has it running, so a restart fails it again.
            logger.error("cannot record a failed line", metadata: ["line": "\(line.id)", "error": "\(reason)"])
            return lineEnded(line, in: job)
        }
        if transient {
            if outputsDue[job.id, default: []].insert(line.id).inserted {
                logger.warning("cannot write a line's outputs yet; its pictures stay in the state folder and the write is retried",
                               metadata: ["job": "\(job.id)", "line": "\(line.id)", "error": "\(reason)"])
            }
            return
        }
        logger.error("cannot write a line's outputs", metadata: ["line": "\(line.id)", "error": "\(reason)"])
        fail(line, in: job, reason: "cannot write the outputs: \(reason)")
    }

    /// The line fails as a whole (its model is served nowhere, its outputs cannot be written):
    /// its manifest says so.
    func fail(_ line: SampledLine, in job: JobRecord, reason: String) {
        guard line.state == .pending else { return }
        let finishedAt = now()
        (line.state, line.error, line.finishedAt, line.writing) = (.failed, reason, finishedAt, finishedAt)
        line.results.removeAll()
        settle(line.id, in: job)
        let row = JournalLine(job: job.id, envelope: line.envelope, state: .failed, error: reason, finishedAt: finishedAt, tally: line.tally)
        output.append(.store(.writeLine(LineOutputs(job: job.id, line: line.id, folder: job.output, layout: job.layout, prompts: line.envelope.prompts,
                                                    instruction: nil, pictures: [],
                                                    manifest: VariantManifestLine.failure(of: line, job: job),
                                                    change: JournalChange(lines: [row])))))
    }

    func lineEnded(_ line: SampledLine, in job: JobRecord) {
        if line.state == .failed { metrics.editsFailed.increment() } else { metrics.editsFinished.increment() }
        if job.isComplete {
            logger.info("job complete", metadata: ["job": "\(job.id)", "lines": "\(job.lines.count)", "variants": "\(job.tally.done)",
                                                   "kept": "\(job.tally.kept)", "failed lines": "\(job.failedCount)"])
            if job.layout == .ptp {
                manifestsWritten.insert(job.id)
            } else {
                output.append(.store(.finishDataset(job: job.id, folder: job.output, layout: job.layout)))
            }
        }
        output.append(.jobChanged(job.id))
    }

    /// Rebuilds a sampled job's lines from the journal: running lines get their results back
    /// and their remaining variants queued; lines whose variants are all in are completed.
    func restoreLines(_ saved: [JournalLine], job: String) -> [SampledLine] {
        saved.compactMap { row in
            guard let plan = row.envelope.sampling else { return nil }
            let line = SampledLine(job: job, envelope: row.envelope, plan: plan)
            (line.state, line.error, line.finishedAt) = (row.state, row.error, row.finishedAt)
            if let tally = row.tally { line.tally = tally }
            guard row.state == .pending || row.state == .finishing else { return line }
            line.state = .pending
            for record in row.variants where record.index < plan.samples && line.done.insert(record.index) {
                line.results[record.index] = record
                var change = VariantTally()
                change.done = 1
                if record.error != nil {
                    change.failed = 1
                } else if let scores = record.scores, let reason = plan.filter.rejection(of: scores) {
                    change.rejected[reason.rawValue] = 1
                }
                line.tally.add(change)
            }
            line.undispatched = plan.samples - line.done.count
            return line
        }
    }
}
