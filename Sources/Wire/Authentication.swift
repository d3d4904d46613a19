import Crypto
import Foundation

/// The cluster's shared secret, and the mutual HMAC-SHA256 challenge-response built on it. The
/// connecting peer says hello with a random nonce; the coordinator answers with its own; the
/// peer proves the secret over both nonces, and the coordinator proves it back in its welcome.
/// So nobody joins or submits without the secret, nobody poses as the coordinator without it,
/// and no proof can be replayed on another connection or reflected to the other side. The
/// traffic itself is encrypted only with TLS (`--tls-cert`, `--tls-key`, `--tls-ca`).
public struct SharedSecret: Sendable {
    let bytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: bytes) }

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// From `--secret-file FILE` (its bytes, a trailing newline removed), else the PTP_SECRET
    /// environment variable. A missing or empty secret is an error naming both.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SharedSecret {
        if let file { return try read(file, flag: "--secret-file") }
        if let value = environment["PTP_SECRET"], strength(Array(value.utf8)) >= 16 {
            return SharedSecret(Array(value.utf8))
        }
        throw WireError(.authenticationFailed, "no cluster secret: pass --secret-file FILE or set PTP_SECRET (at least 16 characters)")
    }

    /// The secret in `file`, named in errors by the option that gave it.
    public static func read(_ file: String, flag: String) throws -> SharedSecret {
        guard var data = FileManager.default.contents(atPath: file) else {
            throw WireError(.authenticationFailed, "\(flag): cannot read \(file)")
        }
        while let last = data.last, last == 0x0A || last == 0x0D { data.removeLast() }
        guard strength(Array(data)) >= 16 else {
            throw WireError(.authenticationFailed, "\(flag): \(file) holds \(strength(Array(data))) bytes that are not blanks; use at least 16 "
                            + "(e.g. head -c 32 /dev/urandom | base64 > \(file))")
        }
        return SharedSecret(Array(data))
    }

    /// Bytes that are not blanks (a secret of spaces is no secret).
    static func strength(_ bytes: [UInt8]) -> Int {
        bytes.filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }.count
    }

    /// Why a secret file is not private, as ssh says of a key: readable or writable by its group
    /// or by others. Nil when only its owner can reach it. A symbolic link is judged by the
    /// file it points to (a link's own mode is always 777; Kubernetes mounts secrets as links).
    public static func exposure(of file: String) -> String? {
        let target = URL(fileURLWithPath: file).resolvingSymlinksInPath().path
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: target),
              let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 else { return nil }
        return "\(file) is readable or writable by others (mode \(String(mode, radix: 8))): anyone who can read it can join the cluster; chmod 600 \(file)"
    }

    /// A fresh 32-byte nonce.
    public static func nonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// Who proves knowledge of the secret; part of the proven message, so that one side's
    /// proof is never valid for the other.
    public enum Prover: UInt8, Sendable {
        case peer = 1
        case coordinator = 2
    }

    /// HMAC(secret, "ptp-auth" | prover | version | role | node id | peer nonce | coordinator nonce).
    public func proof(by prover: Prover, version: UInt16, role: PeerRole, nodeID: String,
                      peerNonce: [UInt8], coordinatorNonce: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Self.message(prover, version, role, nodeID, peerNonce, coordinatorNonce), using: key))
    }

    /// Constant-time check of a proof.
    public func verify(_ mac: [UInt8], by prover: Prover, version: UInt16, role: PeerRole, nodeID: String,
                       peerNonce: [UInt8], coordinatorNonce: [UInt8]) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Self.message(prover, version, role, nodeID, peerNonce, coordinatorNonce),
                                               using: key)
    }

    private static func message(_ prover: Prover, _ version: UInt16, _ role: PeerRole, _ nodeID: String,
                                _ peerNonce: [UInt8], _ coordinatorNonce: [UInt8]) -> [UInt8] {
        var message = Array("ptp-auth".utf8) + [prover.rawValue, UInt8(version >> 8), UInt8(version & 0xFF), role.rawValue]
        message += Array(nodeID.utf8) + [0]
        message += [UInt8(peerNonce.count)] + peerNonce + [UInt8(coordinatorNonce.count)] + coordinatorNonce
        return message
    }
}
