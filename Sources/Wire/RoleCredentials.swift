/// What proves each role to the coordinator: a secret per role, so that a worker's credential
/// cannot submit and a client's cannot join as a worker, and a read-only one for `ptp status`.
/// One secret may stand for several roles (`--secret-file` alone: every role, as before roles
/// were separate). Under mutual TLS a certificate naming its role stands in for the secret.
public struct RoleCredentials: Sendable {
    public var worker: SharedSecret?
    public var client: SharedSecret?
    /// Reads the cluster's status and watches jobs; nothing else.
    public var status: SharedSecret?

    public init(worker: SharedSecret? = nil, client: SharedSecret? = nil, status: SharedSecret? = nil) {
        (self.worker, self.client, self.status) = (worker, client, status)
    }

    /// One secret for every role.
    public init(shared: SharedSecret) { self.init(worker: shared, client: shared, status: shared) }

    /// The secrets a peer signing in as `role` may prove, in the order they are tried: a
    /// client's credential also reads the status (`ptp status` with the submitter's secret).
    public func secrets(for role: PeerRole) -> [SharedSecret] {
        switch role {
        case .worker: return [worker].compactMap { $0 }
        case .client: return [client].compactMap { $0 }
        case .monitor: return [status, client].compactMap { $0 }
        }
    }

    /// Whether no secret at all was given (then only certificates can sign peers in).
    public var isEmpty: Bool { worker == nil && client == nil && status == nil }

    /// Whether every role is signed in by one and the same secret: the cluster's one secret.
    public var isOneSharedSecret: Bool {
        guard let worker, let client else { return false }
        return worker == client && (status == nil || status == worker)
    }

    /// Whether workers and clients prove the same secret, so that either can do what the other does.
    public var workersAndClientsShareASecret: Bool {
        guard let worker, let client else { return false }
        return worker == client
    }
}

extension SharedSecret: Equatable {
    public static func == (lhs: SharedSecret, rhs: SharedSecret) -> Bool { lhs.bytes == rhs.bytes }
}
