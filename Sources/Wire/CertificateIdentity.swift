import Foundation
import NIOCore
import NIOSSL
import X509

/// Who a verified peer certificate says its holder is: its subject's common name, and the role
/// its organizational unit grants (`OU=worker`, `OU=client` or `OU=status`). Under mutual TLS a
/// certificate that names a role is that role's credential, in place of a shared secret.
public struct CertificateIdentity: Sendable, Equatable {
    public let name: String
    public let role: PeerRole?
    /// Whether its subject names any role at all (a coordinator's certificate names none).
    public let namesARole: Bool

    /// The role an organizational unit names, as the README tells users to write it.
    public static func role(named unit: String) -> PeerRole? {
        switch unit.trimmingCharacters(in: .whitespaces).lowercased() {
        case "worker": return .worker
        case "client": return .client
        case "status": return .monitor
        default: return nil
        }
    }

    public init(name: String, role: PeerRole?, namesARole: Bool? = nil) {
        (self.name, self.role, self.namesARole) = (name, role, namesARole ?? (role != nil))
    }

    /// Whether the certificate signs its holder in as `role`: its own role, and a client's
    /// certificate also reads the status, as the clients' secret does.
    public func grants(_ role: PeerRole) -> Bool {
        self.role == role || (role == .monitor && self.role == .client)
    }

    /// The identity in a certificate; nil when it cannot be parsed.
    public init?(_ certificate: NIOSSLCertificate) {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        var name = "", roles: [PeerRole] = []
        for attribute in parsed.subject.flatMap({ $0 }) {
            guard let text = String(attribute.value) else { continue }
            if attribute.type == .RDNAttributeType.commonName { name = text }
            if attribute.type == .RDNAttributeType.organizationalUnitName, let role = Self.role(named: text) { roles.append(role) }
        }
        // A certificate naming two roles grants none: which one it was meant for is not ours to guess.
        self.init(name: name, role: roles.count == 1 ? roles[0] : nil, namesARole: !roles.isEmpty)
    }

    /// The verified identity of the peer on `channel`, when it connected over TLS with a
    /// certificate (the coordinator verifies it against `--tls-ca` during the handshake). On the
    /// channel's event loop.
    public static func of(_ channel: Channel) -> CertificateIdentity? {
        TLSProblem.peerCertificate(on: channel).flatMap(CertificateIdentity.init)
    }
}
