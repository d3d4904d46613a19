import Crypto
import Foundation

/// The cluster's shared secret, and the HMAC-SHA256 challenge-response built on it: the side
/// that accepts a connection sends a random nonce; the connecting side answers with
/// HMAC(secret, "ptp-auth-v1" | version | role | node id | nonce). Nobody joins or submits
/// without the secret, and a proof cannot be replayed on another connection.
public struct SharedSecret: Sendable {
    private let bytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: bytes) }

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// From `--secret-file FILE` (its bytes, a trailing newline removed), else the PTP_SECRET
    /// environment variable. A missing or empty secret is an error naming both.
    public static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SharedSecret {
        if let file {
            guard var data = FileManager.default.contents(atPath: file) else {
                throw WireError(.authenticationFailed, "--secret-file: cannot read \(file)")
            }
            while let last = data.last, last == 0x0A || last == 0x0D { data.removeLast() }
            guard data.count >= 16 else {
                throw WireError(.authenticationFailed, "--secret-file: \(file) holds \(data.count) bytes; use at least 16 (e.g. head -c 32 /dev/urandom | base64 > \(file))")
            }
            return SharedSecret(Array(data))
        }
        if let value = environment["PTP_SECRET"], value.utf8.count >= 16 {
            return SharedSecret(Array(value.utf8))
        }
        throw WireError(.authenticationFailed, "no cluster secret: pass --secret-file FILE or set PTP_SECRET (at least 16 characters)")
    }

    /// A fresh 32-byte nonce.
    public static func nonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    public func proof(nonce: [UInt8], version: UInt16, role: PeerRole, nodeID: String) -> [UInt8] {
        var message = Array("ptp-auth-v1".utf8)
        message += [UInt8(version >> 8), UInt8(version & 0xFF), role.rawValue]
        message += Array(nodeID.utf8) + [0] + nonce
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
    }

    /// Constant-time check of a proof.
    public func verify(_ mac: [UInt8], nonce: [UInt8], version: UInt16, role: PeerRole, nodeID: String) -> Bool {
        var message = Array("ptp-auth-v1".utf8)
        message += [UInt8(version >> 8), UInt8(version & 0xFF), role.rawValue]
        message += Array(nodeID.utf8) + [0] + nonce
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: message, using: key)
    }
}
