import CoreMetrics
import Foundation
import Metrics
import Prometheus

/// The coordinator's Prometheus metrics, through swift-metrics: per node tasks, images, UNet
/// steps and task durations; queue depth and wait, edit latency, jobs by state, workers, leases
/// lost, failures, bytes on the wire. Every family has HELP and TYPE lines.
public final class CoordinatorMetrics: @unchecked Sendable {
    let registry: PrometheusCollectorRegistry
    let queueDepth: CoreMetrics.Gauge
    let leasedTasks: CoreMetrics.Gauge
    let workers: CoreMetrics.Gauge
    let unservedModels: CoreMetrics.Gauge
    let jobsSubmitted: CoreMetrics.Counter
    let tasksAssigned: CoreMetrics.Counter
    let leasesLost: CoreMetrics.Counter
    let taskFailures: CoreMetrics.Counter
    let duplicateResults: CoreMetrics.Counter
    let editsFinished: CoreMetrics.Counter
    let editsFailed: CoreMetrics.Counter
    let bytesReceived: CoreMetrics.Counter
    let bytesSent: CoreMetrics.Counter
    let rejectedConnections: CoreMetrics.Counter
    /// From a task's queueing (or requeueing) to its assignment.
    let queueWait: CoreMetrics.Timer
    /// From a job's submission to each of its edits' outputs being written.
    let editLatency: CoreMetrics.Timer
    private let factory: DescribedMetricsFactory
    private let lock = NSLock()
    private var perNode: [String: AnyObject] = [:]

    static let help: [String: String] = [
        "ptp_queued_tasks": "Tasks waiting for a worker.",
        "ptp_leased_tasks": "Tasks leased to workers.",
        "ptp_connected_workers": "Workers signed in.",
        "ptp_unserved_models": "Models (at a precision) that queued tasks need and no connected worker serves.",
        "ptp_jobs": "Jobs by state (running, completed, completed-with-failures).",
        "ptp_jobs_submitted_total": "Jobs accepted.",
        "ptp_tasks_assigned_total": "Task assignments, retries included.",
        "ptp_leases_lost_total": "Leases lost to expiry or a worker leaving.",
        "ptp_task_failures_total": "Failures reported by workers.",
        "ptp_duplicate_results_total": "Results for tasks already committed (ignored).",
        "ptp_edits_finished_total": "Edits whose outputs were written.",
        "ptp_edits_failed_total": "Edits that failed.",
        "ptp_wire_bytes_received_total": "Bytes received on the protocol port.",
        "ptp_wire_bytes_sent_total": "Bytes sent on the protocol port.",
        "ptp_rejected_connections_total": "Connections refused (handshake, protocol or limits).",
        "ptp_queue_wait_seconds": "Time from a task's queueing to its assignment.",
        "ptp_edit_latency_seconds": "Time from a job's submission to an edit's outputs being written.",
        "ptp_node_tasks_completed_total": "Tasks completed, per node.",
        "ptp_node_images_completed_total": "Images finished, per node.",
        "ptp_node_unet_steps_total": "UNet denoising steps, per node.",
        "ptp_node_task_seconds": "Time from a task's assignment to its result, per node.",
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        let factory = DescribedMetricsFactory(registry: registry, help: Self.help)
        func gauge(_ label: String) -> CoreMetrics.Gauge { CoreMetrics.Gauge(label: label, dimensions: [], factory: factory) }
        func counter(_ label: String) -> CoreMetrics.Counter { CoreMetrics.Counter(label: label, dimensions: [], factory: factory) }
        queueDepth = gauge("ptp_queued_tasks")
        leasedTasks = gauge("ptp_leased_tasks")
        workers = gauge("ptp_connected_workers")
        unservedModels = gauge("ptp_unserved_models")
        jobsSubmitted = counter("ptp_jobs_submitted_total")
        tasksAssigned = counter("ptp_tasks_assigned_total")
        leasesLost = counter("ptp_leases_lost_total")
        taskFailures = counter("ptp_task_failures_total")
        duplicateResults = counter("ptp_duplicate_results_total")
        editsFinished = counter("ptp_edits_finished_total")
        editsFailed = counter("ptp_edits_failed_total")
        bytesReceived = counter("ptp_wire_bytes_received_total")
        bytesSent = counter("ptp_wire_bytes_sent_total")
        rejectedConnections = counter("ptp_rejected_connections_total")
        queueWait = CoreMetrics.Timer(label: "ptp_queue_wait_seconds", dimensions: [], factory: factory)
        editLatency = CoreMetrics.Timer(label: "ptp_edit_latency_seconds", dimensions: [], factory: factory)
        self.factory = factory
    }

    /// One metric per (name, node), made once.
    private func perNode<Metric: AnyObject>(_ name: String, _ node: String, _ make: () -> Metric) -> Metric {
        lock.lock()
        defer { lock.unlock() }
        let key = name + "\u{0}" + node
        if let metric = perNode[key] as? Metric { return metric }
        let metric = make()
        perNode[key] = metric
        return metric
    }

    private func nodeCounter(_ name: String, _ node: String) -> CoreMetrics.Counter {
        perNode(name, node) { CoreMetrics.Counter(label: name, dimensions: [("node", node)], factory: factory) }
    }

    func tasksCompleted(node: String) -> CoreMetrics.Counter { nodeCounter("ptp_node_tasks_completed_total", node) }
    func imagesCompleted(node: String) -> CoreMetrics.Counter { nodeCounter("ptp_node_images_completed_total", node) }
    func unetSteps(node: String) -> CoreMetrics.Counter { nodeCounter("ptp_node_unet_steps_total", node) }
    func taskDuration(node: String) -> CoreMetrics.Timer {
        perNode("ptp_node_task_seconds", node) { CoreMetrics.Timer(label: "ptp_node_task_seconds", dimensions: [("node", node)], factory: factory) }
    }

    /// Makes a node's series at zero when it joins, so that its first images count as an
    /// increase (a counter that first appears at 3 and stays there has no `rate()`).
    func nodeJoined(_ node: String) {
        for counter in [tasksCompleted(node: node), imagesCompleted(node: node), unetSteps(node: node)] { counter.increment(by: 0) }
        _ = taskDuration(node: node)
    }

    /// Jobs by state, as the broker counts them.
    func recordJobs(_ counts: [String: Int]) {
        for state in ["running", "completed", "completed-with-failures"] {
            perNode("ptp_jobs", state) { CoreMetrics.Gauge(label: "ptp_jobs", dimensions: [("state", state)], factory: factory) }
                .record(counts[state] ?? 0)
        }
    }

    /// The Prometheus text exposition.
    func exposition() -> String { registry.emitToString() }
}
