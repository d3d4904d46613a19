import NIOCore
import NIOSSL

/// How a worker or client proves itself to the coordinator and protects the connection: the
/// secret of its role (`--secret-file`), TLS (`--tls-ca`, and under mutual TLS its own
/// `--tls-cert` and `--tls-key`), or both. Under mutual TLS a certificate naming the node's role
/// may stand in for the secret.
public struct NodeCredential: Sendable {
    public var secret: SharedSecret?
    public var tls: NIOSSLContext?

    public init(secret: SharedSecret?, tls: NIOSSLContext? = nil) {
        (self.secret, self.tls) = (secret, tls)
    }

    /// Puts TLS first in a connection's pipeline, when this node uses it (on its event loop).
    public func addTLS(to channel: Channel, host: String) throws {
        guard let tls else { return }
        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler.connecting(to: host, context: tls))
    }
}
