import NIOSSL

/// Why a connection to the coordinator failed, as the connecting side (a worker, `ptp submit`,
/// `ptp status`) tells it apart: a refusal is final, a closed connection is worth another try.
public enum ConnectionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The coordinator refused this connection, with its reason (wrong secret, another protocol
    /// version, a malformed message).
    case refused(WireError)
    /// The other side broke the protocol or could not prove the cluster secret: nothing it says
    /// is trusted.
    case untrusted(String)
    /// The connection closed (the coordinator went away or restarted, or the network dropped).
    case closed
    /// No answer within the time allowed.
    case timedOut(String)
    /// The coordinator could not be reached.
    case unreachable(String)
    /// The other side is not what this node's settings say: a web server, TLS against
    /// plaintext, a certificate that is not trusted. Trying again cannot help; the settings must
    /// change.
    case misconfigured(String)

    public var description: String {
        switch self {
        case .refused(let error): return "the coordinator refused the connection: \(error.reason)"
        case .untrusted(let reason): return reason
        case .closed: return "the connection to the coordinator closed"
        case .timedOut(let what): return "no \(what) from the coordinator in time"
        case .unreachable(let reason): return "cannot reach the coordinator: \(reason)"
        case .misconfigured(let reason): return reason
        }
    }
}

extension ConnectionError {
    /// A failure while connecting, as this node should report it: TLS failures and a peer that
    /// is not a coordinator are `misconfigured`, with the setting to change.
    public init(connecting error: Error, peerCertificate: NIOSSLCertificate?) {
        if let error = error as? ConnectionError {
            self = error
        } else if TLSProblem.isDisconnection(error) {
            self = .closed
        } else if let reason = TLSProblem.reason(error, side: .peer, peerCertificate: peerCertificate) {
            self = .misconfigured(reason)
        } else if let wire = error as? WireError, wire.code == .tlsMismatch || wire.reason.contains("answered in HTTP") {
            self = .misconfigured(wire.reason)
        } else {
            self = .untrusted("\(error)")
        }
    }

    /// Whether the coordinator's answer means this node's settings are wrong, so that a worker
    /// stops instead of trying again: a wrong credential or role, another protocol version,
    /// TLS on one side only, a certificate not trusted.
    public var isPermanent: Bool {
        switch self {
        case .misconfigured: return true
        case .refused(let error): return [.authenticationFailed, .badVersion, .tlsMismatch, .forbidden].contains(error.code)
        default: return false
        }
    }
}
