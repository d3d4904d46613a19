import ArgumentParser
import Foundation
import NIOSSL
import Wire

/// TLS files, as every cluster command takes them.
struct TLSOptions: ParsableArguments {
    @Option(help: "PEM certificate: the coordinator's for its protocol port; a worker's or client's own, for a coordinator that asks for one (mutual TLS).")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "PEM CA certificate: on workers and clients, turns TLS on and verifies the coordinator's certificate (its name included); on the coordinator, makes every peer present a certificate it signed (mutual TLS).")
    var tlsCa: String?

    var files: TLSFiles { TLSFiles(certificate: tlsCert, key: tlsKey, ca: tlsCa) }
}

/// How a worker or client proves itself: its role's secret, and TLS.
struct CredentialOptions: ParsableArguments {
    @Option(help: "File holding this node's secret: the workers' secret for a worker, the clients' (or the read-only status secret) for a client (default: the PTP_SECRET environment variable; not needed under mutual TLS with a certificate naming this node's role).")
    var secretFile: String?

    @OptionGroup var tls: TLSOptions

    func load() throws -> NodeCredential {
        let context: NIOSSLContext?
        do { context = try tls.files.clientContext() } catch let error as TLSSetupError { throw CommandError(error.description) }
        if let warning = tls.files.ownCertificateWarning() { note("warning: \(warning); the coordinator will refuse it") }
        if let secretFile, let exposure = SharedSecret.exposure(of: secretFile) { note("warning: \(exposure)") }
        do {
            return NodeCredential(secret: try SharedSecret.load(file: secretFile), tls: context)
        } catch let error as WireError {
            // A certificate presented under mutual TLS may be the whole credential.
            if secretFile == nil, context != nil, tls.tlsCert != nil { return NodeCredential(secret: nil, tls: context) }
            throw CommandError(error.reason + (tls.tlsCert == nil ? " (or, under mutual TLS, --tls-cert and --tls-key with a certificate naming this node's role)" : ""))
        }
    }
}

/// What the coordinator accepts: a secret per role, or one for all, and TLS.
struct CoordinatorCredentialOptions: ParsableArguments {
    @Option(help: "File holding a secret for every role that has none of its own below (default: the PTP_SECRET environment variable).")
    var secretFile: String?

    @Option(help: "File holding the workers' secret: it signs workers in, and nothing else.")
    var workerSecretFile: String?

    @Option(help: "File holding the clients' secret: it submits jobs, watches them and reads the status; it cannot join as a worker.")
    var clientSecretFile: String?

    @Option(help: "File holding a read-only secret: ptp status and watching jobs, nothing else.")
    var statusSecretFile: String?

    @OptionGroup var tls: TLSOptions

    func load() throws -> (credentials: RoleCredentials, tls: NIOSSLContext?) {
        let context: NIOSSLContext?
        do { context = try tls.files.serverContext() } catch let error as TLSSetupError { throw CommandError(error.description) }
        if let warning = tls.files.ownCertificateWarning() { note("warning: \(warning); every worker and client will refuse it") }
        func read(_ file: String?, _ flag: String) throws -> SharedSecret? {
            guard let file else { return nil }
            if let exposure = SharedSecret.exposure(of: file) { note("warning: \(exposure)") }
            do { return try SharedSecret.read(file, flag: flag) } catch let error as WireError { throw CommandError(error.reason) }
        }
        var credentials = RoleCredentials(worker: try read(workerSecretFile, "--worker-secret-file"),
                                          client: try read(clientSecretFile, "--client-secret-file"),
                                          status: try read(statusSecretFile, "--status-secret-file"))
        let shared: SharedSecret?
        if let secretFile {
            shared = try read(secretFile, "--secret-file")
        } else if credentials.worker == nil || credentials.client == nil {
            shared = try? SharedSecret.load(file: nil)
        } else {
            shared = nil
        }
        if let shared {
            credentials.worker = credentials.worker ?? shared
            credentials.client = credentials.client ?? shared
            // The read-only secret exists only when given: the clients' secret reads the status too.
        }
        guard !credentials.isEmpty || tls.tlsCa != nil else {
            throw CommandError("no credentials: pass --secret-file FILE (or --worker-secret-file and --client-secret-file), set PTP_SECRET, "
                               + "or use mutual TLS (--tls-cert, --tls-key and --tls-ca, with certificates naming each peer's role)")
        }
        return (credentials, context)
    }
}
