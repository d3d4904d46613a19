import Wire

/// The coordinator: job intake, task graph, scheduling, leases, journal, results, metrics.
public enum CoordinatorNode {
    /// The protocol version this coordinator speaks.
    public static let protocolVersion = WireProtocol.version
}
