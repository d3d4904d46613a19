import Foundation
import Wire

/// The text of `ptp status`.
enum StatusTable {
    static func render(_ status: ClusterStatus) -> String {
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count) }
        var lines = ["NODE                 STATE     TASK                        STEPS/S  IMAGES/MIN  DONE  FAILED  LAST HEARD"]
        for node in status.nodes {
            lines.append(pad(node.id, 21) + pad(node.state, 10) + pad(node.task ?? "-", 28)
                + pad(String(format: "%.2f", node.stepsPerSecond), 9) + pad(String(format: "%.1f", node.imagesPerMinute), 12)
                + pad(String(node.done), 6) + pad(String(node.failed), 8) + String(format: "%.0f s ago", node.lastHeard))
        }
        if status.nodes.isEmpty { lines.append("(no workers connected)") }
        lines.append("")
        lines.append("queued tasks: \(status.queuedTasks), running: \(status.leasedTasks)")
        for (model, seconds) in status.unserved.sorted(by: { $0.key < $1.key }) {
            lines.append("waiting \(Int(seconds)) s for a worker serving \(model): no connected worker serves it")
        }
        lines.append("JOB        STATE                    FINISHED  FAILED  RUNNING  TOTAL  OUTPUT")
        for job in status.jobs {
            lines.append(pad(job.id, 11) + pad(job.state, 25) + pad(String(job.finished), 10) + pad(String(job.failed), 8)
                + pad(String(job.running), 9) + pad(String(job.edits), 7) + job.output)
            if let variants = job.variants { lines.append("           " + variants.summary) }
        }
        return lines.joined(separator: "\n")
    }
}
