/// The connecting side of the handshake (workers, `ptp submit`, `ptp status`): hello with a
/// fresh nonce, the proof in answer to the coordinator's challenge, then the coordinator's own
/// proof checked in its welcome. Until `welcomed` the connection is trusted with nothing.
public struct ClientHandshake: Sendable {
    public let secret: SharedSecret
    public let role: PeerRole
    public let nodeID: String
    /// This side's nonce, sent in the hello.
    public let nonce: [UInt8]
    private var coordinatorNonce: [UInt8]?
    public private(set) var welcomed = false

    public init(secret: SharedSecret, role: PeerRole, nodeID: String) {
        self.secret = secret
        self.role = role
        self.nodeID = nodeID
        nonce = SharedSecret.nonce()
    }

    /// The first message of the connection.
    public func hello(capabilities: NodeCapabilities = NodeCapabilities()) -> WireMessage {
        .hello(version: WireProtocol.version, role: role, nodeID: nodeID, capabilities: capabilities, nonce: nonce)
    }

    /// The proof that answers the coordinator's challenge.
    public mutating func answer(challenge: [UInt8]) throws -> WireMessage {
        guard coordinatorNonce == nil, !welcomed else { throw WireError(.unexpectedMessage, "a second challenge from the coordinator") }
        coordinatorNonce = challenge
        return .proof(mac: secret.proof(by: .peer, version: WireProtocol.version, role: role, nodeID: nodeID,
                                        peerNonce: nonce, coordinatorNonce: challenge))
    }

    /// Accepts the welcome only if it carries the coordinator's proof of the secret over both
    /// nonces: a server without the secret cannot hand out work or report results.
    public mutating func accept(welcomeProof proof: [UInt8]) throws {
        guard let coordinatorNonce, !welcomed else { throw WireError(.unexpectedMessage, "a welcome before the challenge") }
        guard secret.verify(proof, by: .coordinator, version: WireProtocol.version, role: role, nodeID: nodeID,
                            peerNonce: nonce, coordinatorNonce: coordinatorNonce) else {
            throw WireError(.authenticationFailed, "the coordinator could not prove it holds the cluster secret (wrong secret on one side, or not our coordinator)")
        }
        welcomed = true
    }
}
