import Foundation
import Wire

/// A connected, authenticated worker as the broker sees it.
final class WorkerSession {
    let sessionID: String
    let nodeID: String
    let host: String
    let models: Set<String>
    /// Free task slots the worker last announced, minus the tasks given since.
    var credits = 0
    var tasks: Set<String> = []
    var done = 0
    var failed = 0
    var lastHeard: Date
    var draining = false
    /// Recent (time, steps) of progress, and times of finished images, for rates.
    var stepMarks: [(Date, Int)] = []
    var imageMarks: [Date] = []

    init(sessionID: String, nodeID: String, host: String, models: Set<String>, joined: Date) {
        (self.sessionID, self.nodeID, self.host, self.models, lastHeard) = (sessionID, nodeID, host, models, joined)
    }

    func noteSteps(_ steps: Int, at now: Date) {
        stepMarks.append((now, steps))
        stepMarks.removeAll { now.timeIntervalSince($0.0) > 30 }
    }

    func noteImages(_ count: Int, at now: Date) {
        for _ in 0..<count { imageMarks.append(now) }
        imageMarks.removeAll { now.timeIntervalSince($0) > 300 }
    }

    /// UNet steps per second over the last 30 s.
    func stepsPerSecond(at now: Date) -> Double {
        guard let first = stepMarks.first else { return 0 }
        let span = max(now.timeIntervalSince(first.0), 1)
        return Double(stepMarks.reduce(0) { $0 + $1.1 }) / span
    }

    /// Finished images per minute over the last 5 minutes.
    func imagesPerMinute(at now: Date) -> Double {
        guard let first = imageMarks.first else { return 0 }
        return Double(imageMarks.count) / max(now.timeIntervalSince(first), 60) * 60
    }
}
