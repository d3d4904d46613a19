import EditContract
import Engine
import Foundation
import NIOCore
import Wire

/// How a worker connects and what it runs.
public struct WorkerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The worker's secret and TLS settings.
    public var credential: NodeCredential
    public var nodeID: String
    public var threads: Int
    /// Model directories by the key specs name them with ("default" for the embedded model).
    public var models: [String: URL]
    /// CLIP model directories (transformers' CLIPModel folders) by the key sampled lines name
    /// them with as `scorer` ("default" for the embedded model's).
    public var scorers: [String: URL]
    /// The precisions this worker runs edits at.
    public var precisions: [Precision]
    public var lowMemory: Bool
    /// The bound on the inversions kept for later edits of the same pictures (0: none kept).
    public var inversionCacheBytes: Int
    public var codec: TensorCodec
    public var heartbeatInterval: TimeAmount
    /// Longest wait between reconnection attempts.
    public var maximumBackoff: TimeAmount
    /// How long a draining worker keeps trying to deliver a finished result while the
    /// coordinator is unreachable, before it leaves anyway (the coordinator then runs the task
    /// again when its lease expires).
    public var drainDeliveryTimeout: TimeAmount

    public init(host: String, port: Int, credential: NodeCredential, nodeID: String, threads: Int, models: [String: URL], scorers: [String: URL] = [:],
                precisions: [Precision] = Precision.allCases.filter(\.isSupported),
                lowMemory: Bool = false, inversionCacheBytes: Int = 1 << 30, codec: TensorCodec = TensorCodec(), heartbeatInterval: TimeAmount = .seconds(5),
                maximumBackoff: TimeAmount = .seconds(30), drainDeliveryTimeout: TimeAmount = .seconds(60)) {
        (self.host, self.port, self.credential, self.nodeID, self.threads, self.models) = (host, port, credential, nodeID, threads, models)
        (self.scorers, self.precisions) = (scorers, precisions)
        (self.lowMemory, self.codec, self.heartbeatInterval, self.maximumBackoff) = (lowMemory, codec, heartbeatInterval, maximumBackoff)
        (self.drainDeliveryTimeout, self.inversionCacheBytes) = (drainDeliveryTimeout, inversionCacheBytes)
    }
}
