import Foundation
import NIOCore
import NIOSSL

/// The PEM files of a node's TLS settings (`--tls-cert`, `--tls-key`, `--tls-ca`).
///
/// On the coordinator a certificate and key turn TLS on for the protocol port, and a CA makes
/// every peer present a certificate it signed (mutual TLS). On workers and clients a CA turns
/// TLS on and verifies the coordinator's certificate against it, name included; a certificate
/// and key are presented to a coordinator that asks for one.
public struct TLSFiles: Sendable, Equatable {
    public var certificate: String?
    public var key: String?
    public var ca: String?

    public init(certificate: String? = nil, key: String? = nil, ca: String? = nil) {
        (self.certificate, self.key, self.ca) = (certificate, key, ca)
    }

    /// Whether any TLS file was given.
    public var isEmpty: Bool { certificate == nil && key == nil && ca == nil }

    /// The coordinator's TLS context; nil when no file was given (plaintext).
    public func serverContext(now: Date = Date()) throws -> NIOSSLContext? {
        guard !isEmpty else { return nil }
        guard let certificate, let key else {
            throw TLSSetupError("--tls-cert and --tls-key: a coordinator serves TLS with both its certificate and its key; "
                                + "give both (--tls-ca alone is for workers and clients)")
        }
        // An out-of-date certificate of its own is warned about (`ownCertificateWarning`), not
        // refused: one that expires while the coordinator runs must be named by both ends anyway.
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try Self.chain(certificate, flag: "--tls-cert", now: nil).map { .certificate($0) },
            privateKey: .privateKey(try Self.privateKey(key)))
        configuration.minimumTLSVersion = .tlsv12
        if let ca {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(try Self.chain(ca, flag: "--tls-ca", now: now))
            configuration.sendCANameList = true
        }
        return try Self.context(configuration)
    }

    /// A worker's or client's TLS context; nil when no file was given (plaintext).
    public func clientContext(now: Date = Date()) throws -> NIOSSLContext? {
        guard !isEmpty else { return nil }
        guard let ca else {
            throw TLSSetupError("--tls-ca: give the CA certificate that signed the coordinator's (TLS is on once --tls-cert is given, "
                                + "and the coordinator must be verified)")
        }
        // This node's own certificate is not refused here when out of date: the coordinator
        // refuses it and says why on both ends (`ownCertificateWarning` warns first).
        guard (certificate == nil) == (key == nil) else {
            throw TLSSetupError("--tls-cert and --tls-key: a node's certificate needs its key, and a key its certificate; give both or neither")
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(try Self.chain(ca, flag: "--tls-ca", now: now))
        if let certificate, let key {
            configuration.certificateChain = try Self.chain(certificate, flag: "--tls-cert", now: nil).map { .certificate($0) }
            configuration.privateKey = .privateKey(try Self.privateKey(key))
        }
        return try Self.context(configuration)
    }

    /// Why this node's own certificate will be refused (expired, or not valid yet), if it will.
    public func ownCertificateWarning(now: Date = Date()) -> String? {
        guard let certificate, let first = try? NIOSSLCertificate.fromPEMFile(certificate).first,
              let problem = TLSProblem.validity(first, now: now) else { return nil }
        return "--tls-cert: the certificate in \(certificate) \(problem)"
    }

    /// The certificates of a PEM file, the first of which must be valid at `now` (when given).
    static func chain(_ path: String, flag: String, now: Date?) throws -> [NIOSSLCertificate] {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw TLSSetupError("\(flag): cannot read \(path); give a PEM certificate file this user can read")
        }
        let certificates: [NIOSSLCertificate]
        do { certificates = try NIOSSLCertificate.fromPEMFile(path) } catch {
            throw TLSSetupError("\(flag): \(path) holds no PEM certificate (\(error)); give the file openssl wrote (-----BEGIN CERTIFICATE-----)")
        }
        guard let first = certificates.first else { throw TLSSetupError("\(flag): \(path) holds no certificate") }
        if let now, let problem = TLSProblem.validity(first, now: now) {
            throw TLSSetupError("\(flag): the certificate in \(path) \(problem)")
        }
        return certificates
    }

    static func privateKey(_ path: String) throws -> NIOSSLPrivateKey {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw TLSSetupError("--tls-key: cannot read \(path); give the PEM private key of --tls-cert, readable by this user")
        }
        do { return try NIOSSLPrivateKey(file: path, format: .pem) } catch {
            throw TLSSetupError("--tls-key: \(path) holds no PEM private key (\(error)); give the key openssl wrote with the certificate")
        }
    }

    static func context(_ configuration: TLSConfiguration) throws -> NIOSSLContext {
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw TLSSetupError("--tls-cert and --tls-key do not go together, or a file is damaged (\(error)); give the key the certificate was made for")
        }
    }

    static func date(_ seconds: time_t) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}

/// A TLS setting that cannot work, with the flag and the fix.
public struct TLSSetupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension NIOSSLClientHandler {
    /// The handler for a connection to `host`: its name is checked against the certificate,
    /// an address literal against the certificate's IP addresses.
    public static func connecting(to host: String, context: NIOSSLContext) throws -> NIOSSLClientHandler {
        let literal = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: literal ? nil : host)
    }
}
