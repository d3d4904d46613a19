/// The connecting side of the handshake (workers, `ptp submit`, `ptp status`): hello with a
/// fresh nonce, the proof in answer to the coordinator's challenge, then the coordinator's own
/// proof checked in its welcome. Until `welcomed` the connection is trusted with nothing.
///
/// Under TLS with a verified coordinator certificate (`coordinatorVerified`) a node may sign in
/// without a secret, by its own certificate: it then sends an empty proof, and the coordinator,
/// already proven by its certificate, may welcome it with an empty one.
public struct ClientHandshake: Sendable {
    public let secret: SharedSecret?
    public let role: PeerRole
    public let nodeID: String
    /// This side's nonce, sent in the hello.
    public let nonce: [UInt8]
    /// The TLS handshake verified the coordinator's certificate against this node's CA.
    public var coordinatorVerified = false
    private var coordinatorNonce: [UInt8]?
    public private(set) var welcomed = false

    public init(secret: SharedSecret?, role: PeerRole, nodeID: String) {
        self.secret = secret
        self.role = role
        self.nodeID = nodeID
        nonce = SharedSecret.nonce()
    }

    /// The first message of the connection.
    public func hello(capabilities: NodeCapabilities = NodeCapabilities()) -> WireMessage {
        .hello(version: WireProtocol.version, role: role, nodeID: nodeID, capabilities: capabilities, nonce: nonce)
    }

    /// The proof that answers the coordinator's challenge (empty without a secret).
    public mutating func answer(challenge: [UInt8]) throws -> WireMessage {
        guard coordinatorNonce == nil, !welcomed else { throw WireError(.unexpectedMessage, "a second challenge from the coordinator") }
        coordinatorNonce = challenge
        guard let secret else { return .proof(mac: []) }
        return .proof(mac: secret.proof(by: .peer, version: WireProtocol.version, role: role, nodeID: nodeID,
                                        peerNonce: nonce, coordinatorNonce: challenge))
    }

    /// Accepts the welcome only if it carries the coordinator's proof of the secret over both
    /// nonces, or, with none, if TLS verified the coordinator's certificate: a server that is
    /// neither cannot hand out work or report results.
    public mutating func accept(welcomeProof proof: [UInt8]) throws {
        guard let coordinatorNonce, !welcomed else { throw WireError(.unexpectedMessage, "a welcome before the challenge") }
        if proof.isEmpty && coordinatorVerified {
            welcomed = true
            return
        }
        guard let secret, secret.verify(proof, by: .coordinator, version: WireProtocol.version, role: role, nodeID: nodeID,
                                        peerNonce: nonce, coordinatorNonce: coordinatorNonce) else {
            throw WireError(.authenticationFailed, "the coordinator could not prove it holds the cluster secret (wrong secret on one side, or not our coordinator)")
        }
        welcomed = true
    }
}
