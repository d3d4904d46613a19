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

    public var description: String {
        switch self {
        case .refused(let error): return "the coordinator refused the connection: \(error.reason)"
        case .untrusted(let reason): return reason
        case .closed: return "the connection to the coordinator closed"
        case .timedOut(let what): return "no \(what) from the coordinator in time"
        case .unreachable(let reason): return "cannot reach the coordinator: \(reason)"
        }
    }
}
