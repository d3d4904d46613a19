import Foundation
import NIOCore
import NIOSSL

/// Why a TLS handshake failed, in words that name the setting to change. BoringSSL reports
/// the failure as error-queue names (CERTIFICATE_VERIFY_FAILED) and the other side's alerts
/// (TLSV1_ALERT_UNKNOWN_CA); the side that verified a certificate also looks at the
/// certificate itself, so that an expired one is called expired.
public enum TLSProblem {
    /// Which end this node is.
    public enum Side: Sendable { case coordinator, peer }

    /// A clear reason, or nil when `error` is not a TLS failure of settings or certificates: a
    /// connection that dropped (EOF during the handshake, a close without TLS's closing alert) is
    /// a network event, worth a reconnection, not a wrong setting.
    public static func reason(_ error: Error, side: Side, peerCertificate: NIOSSLCertificate? = nil, now: Date = Date()) -> String? {
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "the coordinator's certificate does not name the address connected to (--coordinator); connect by a name or address "
                + "the certificate holds, or make it with that name in its subjectAltName"
        }
        guard error is NIOSSLError || error is BoringSSLError, !isDisconnection(error) else { return nil }
        let text = "\(error)"
        let other = side == .peer ? "the coordinator" : "the peer"
        func has(_ name: String) -> Bool { text.contains(name) }
        if has("CERTIFICATE_VERIFY_FAILED") {
            let whose = side == .peer ? "the coordinator's certificate" : "the peer's certificate"
            let flag = side == .peer ? "--tls-ca" : "the coordinator's --tls-ca"
            if let certificate = peerCertificate, let dated = validity(certificate, now: now) { return "\(whose) \(dated)" }
            return "\(whose) is not trusted: it is not signed by the CA in \(flag), or it expired or is not yet valid"
        }
        if has("CERTIFICATE_EXPIRED") { return "\(other) refused this node's certificate as expired; make a new one (--tls-cert)" }
        if has("UNKNOWN_CA") { return "\(other) does not trust this node's certificate: it is not signed by the CA \(other) was given (--tls-ca)" }
        if has("PEER_DID_NOT_RETURN_A_CERTIFICATE") {
            return "the peer presented no certificate, and this coordinator takes only peers with one signed by its --tls-ca; "
                + "give the worker or client --tls-cert and --tls-key"
        }
        if has("CERTIFICATE_REQUIRED") || (side == .peer && has("ALERT_HANDSHAKE_FAILURE")) {
            return "the coordinator asks for a certificate (mutual TLS); give this node --tls-cert and --tls-key signed by the coordinator's CA"
        }
        if has("BAD_CERTIFICATE") || has("CERTIFICATE_UNKNOWN") || has("UNSUPPORTED_CERTIFICATE") {
            return "\(other) refused this node's certificate (--tls-cert)"
        }
        if side == .peer && (has("WRONG_VERSION_NUMBER") || has("PACKET_LENGTH_TOO_LONG") || has("HTTP_REQUEST") || has("RECORD_TOO_LARGE")) {
            return "the coordinator did not answer in TLS: it runs without --tls-cert (then drop --tls-ca here), or this is not its protocol port"
        }
        if side == .coordinator && (has("WRONG_VERSION_NUMBER") || has("HTTP_REQUEST") || has("UNEXPECTED_RECORD")) {
            return "the peer does not speak TLS on this TLS port; give it --tls-ca"
        }
        return nil
    }

    /// Whether `error` only says the connection dropped, during the TLS handshake or after it.
    public static func isDisconnection(_ error: Error) -> Bool {
        if case .uncleanShutdown? = error as? NIOSSLError { return true }
        return (error is NIOSSLError || error is BoringSSLError) && "\(error)".contains("EOF during")
    }

    /// "expired on ..." or "is not valid until ...", or nil when the certificate is in date.
    static func validity(_ certificate: NIOSSLCertificate, now: Date) -> String? {
        let seconds = time_t(now.timeIntervalSince1970)
        if certificate.notValidAfter < seconds { return "expired on \(TLSFiles.date(certificate.notValidAfter)); it needs a new one" }
        if certificate.notValidBefore > seconds { return "is not valid until \(TLSFiles.date(certificate.notValidBefore)); check the clocks" }
        return nil
    }

    /// The certificate the other side presented on `channel`'s TLS handler, if any (on its event loop).
    public static func peerCertificate(on channel: Channel) -> NIOSSLCertificate? {
        (try? channel.pipeline.syncOperations.handler(type: NIOSSLHandler.self))?.peerCertificate
    }
}
