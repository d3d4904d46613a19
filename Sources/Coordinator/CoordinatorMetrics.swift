import CoreMetrics
import Foundation
import Metrics
import Prometheus

/// The coordinator's Prometheus metrics, through swift-metrics: per node tasks, images and
/// UNet steps; queue depth, workers, leases lost, failures, bytes on the wire.
public final class CoordinatorMetrics: @unchecked Sendable {
    let registry: PrometheusCollectorRegistry
    let queueDepth: CoreMetrics.Gauge
    let leasedTasks: CoreMetrics.Gauge
    let workers: CoreMetrics.Gauge
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
    private let lock = NSLock()
    private var perNode: [String: CoreMetrics.Counter] = [:]

    public init() {
        registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        func gauge(_ label: String) -> CoreMetrics.Gauge { CoreMetrics.Gauge(label: label, dimensions: [], factory: factory) }
        func counter(_ label: String) -> CoreMetrics.Counter { CoreMetrics.Counter(label: label, dimensions: [], factory: factory) }
        queueDepth = gauge("ptp_queued_tasks")
        leasedTasks = gauge("ptp_leased_tasks")
        workers = gauge("ptp_connected_workers")
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
        self.factory = factory
    }

    private let factory: PrometheusMetricsFactory

    private func nodeCounter(_ name: String, _ node: String) -> CoreMetrics.Counter {
        lock.lock()
        defer { lock.unlock() }
        let key = name + "\u{0}" + node
        if let counter = perNode[key] { return counter }
        let counter = CoreMetrics.Counter(label: name, dimensions: [("node", node)], factory: factory)
        perNode[key] = counter
        return counter
    }

    func tasksCompleted(node: String) -> CoreMetrics.Counter { nodeCounter("ptp_node_tasks_completed_total", node) }
    func imagesCompleted(node: String) -> CoreMetrics.Counter { nodeCounter("ptp_node_images_completed_total", node) }
    func unetSteps(node: String) -> CoreMetrics.Counter { nodeCounter("ptp_node_unet_steps_total", node) }

    /// The Prometheus text exposition.
    func exposition() -> String { registry.emitToString() }
}
