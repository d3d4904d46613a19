import NIOSSL
import Testing
import Wire

/// Which failures stop a worker for good (settings that cannot work) and which it rides out.
@Suite("connection errors: settings that cannot work, and networks that drop")
struct ConnectionErrorTests {
    @Test("a TLS connection that drops (EOF in the handshake, no closing alert) is a close to reconnect after, not a wrong setting")
    func dropsAreTransient() {
        for error: Error in [NIOSSLError.uncleanShutdown, NIOSSLError.handshakeFailed(.sslError([.eofDuringHandshake]))] {
            let mapped = ConnectionError(connecting: error, peerCertificate: nil)
            #expect(mapped == .closed && !mapped.isPermanent, "\(error) became \(mapped)")
        }
        // An error TLS reports that names no setting stays retryable too.
        let unknown = ConnectionError(connecting: NIOSSLError.readInInvalidTLSState, peerCertificate: nil)
        #expect(!unknown.isPermanent, "\(unknown)")
    }

    @Test("a web server or TLS on one side only, a wrong credential or protocol: permanent, with the setting named")
    func settingsArePermanent() {
        let http = ConnectionError(connecting: WireError(.malformed, "the other side answered in HTTP: it is a web server"), peerCertificate: nil)
        #expect(http.isPermanent)
        let tls = ConnectionError(connecting: WireError(.tlsMismatch, "the other side speaks TLS and this connection does not: give --tls-ca"),
                                  peerCertificate: nil)
        #expect(tls.isPermanent && "\(tls)".contains("--tls-ca"))
        for code in [WireError.Code.authenticationFailed, .badVersion, .tlsMismatch, .forbidden] {
            #expect(ConnectionError.refused(WireError(code, "x")).isPermanent)
        }
        #expect(!ConnectionError.refused(WireError(.overLimit, "x")).isPermanent && !ConnectionError.closed.isPermanent)
    }
}
