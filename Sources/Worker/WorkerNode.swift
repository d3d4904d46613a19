import Engine
import Wire

/// A worker node: connects to a coordinator, takes tasks, runs the Engine's sampler.
public enum WorkerNode {
    /// The protocol version this worker speaks.
    public static let protocolVersion = WireProtocol.version
}
