import Foundation
import Wire

/// What the status page shows, served as JSON at `/status.json` of the metrics port: nodes with
/// their throughput over the last minutes, jobs with progress and an estimate of the time left,
/// failures with their reasons, and the latest results.
public struct DashboardSnapshot: Codable, Sendable, Equatable {
    public struct Node: Codable, Sendable, Equatable {
        public var id: String
        public var host: String
        /// idle, busy, draining, or gone (left within the chart's window).
        public var state: String
        public var task: String?
        public var stepsPerSecond: Double
        public var imagesPerMinute: Double
        public var done: Int
        public var failed: Int
        /// Seconds since the node was last heard from (or left).
        public var lastHeard: Double
        public var models: [String]
        /// Why a gone node left.
        public var reason: String?
        /// Images per minute in each chart bucket, oldest first.
        public var history: [Double]

        /// A connected node: its `ptp status` line, with its chart history (kept flat, as the
        /// page's script reads it).
        init(_ status: NodeStatus, history: [Double]) {
            (id, host, state, task, stepsPerSecond, imagesPerMinute) = (status.id, status.host, status.state, status.task,
                                                                        status.stepsPerSecond, status.imagesPerMinute)
            (done, failed, lastHeard, models, reason, self.history) = (status.done, status.failed, status.lastHeard, status.models, nil, history)
        }

        init(id: String, host: String, state: String, task: String?, stepsPerSecond: Double, imagesPerMinute: Double, done: Int,
             failed: Int, lastHeard: Double, models: [String], reason: String?, history: [Double]) {
            (self.id, self.host, self.state, self.task, self.stepsPerSecond, self.imagesPerMinute) = (id, host, state, task, stepsPerSecond, imagesPerMinute)
            (self.done, self.failed, self.lastHeard, self.models, self.reason, self.history) = (done, failed, lastHeard, models, reason, history)
        }
    }

    public struct Job: Codable, Sendable, Equatable {
        public var id: String
        public var state: String
        public var output: String
        public var edits: Int
        public var finished: Int
        public var failed: Int
        /// Images made of the job's total (each edit makes a source and its targets).
        public var imagesDone: Int
        public var imagesTotal: Int
        /// Seconds since submission.
        public var age: Double
        /// Estimated seconds left, from the pace since its work was first given out; nil until
        /// an image is done, and once the job is complete.
        public var eta: Double?
        /// A complete job: seconds from submission to its last output (nil if none was written).
        public var duration: Double?
        /// How many edits wait for a model no connected worker serves (the page's nodes section
        /// names the models).
        public var waiting: Int
        /// A job of sampled lines: its variants in, kept and rejected (by reason).
        public var variants: VariantProgress?
    }

    public struct Failure: Codable, Sendable, Equatable {
        public var job: String
        public var edit: String
        public var reason: String
    }

    public struct Result: Codable, Sendable, Equatable {
        public var job: String
        public var edit: String
        /// Seconds since its outputs were written.
        public var age: Double
        /// The page's links: a small PNG of the grid, and the grid itself.
        public var thumbnail: String
        public var grid: String
    }

    /// Seconds since 1970 when this was taken.
    public var time: Double
    /// Seconds each history bucket spans.
    public var bucketSeconds: Int
    public var nodes: [Node]
    public var queuedTasks: Int
    public var leasedTasks: Int
    /// Models (with "@bf16" for bf16) that queued tasks need and no connected worker serves,
    /// with seconds waited.
    public var unserved: [String: Double]
    public var jobs: [Job]
    public var failures: [Failure]
    public var results: [Result]
}
