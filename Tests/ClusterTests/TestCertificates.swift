import Foundation

/// Certificates made for a test with Debian's `openssl`: the good ones by
/// `cluster/make-certificates`, as the README tells users to make them (a CA, the
/// coordinator's named localhost and 127.0.0.1, one per role naming it in OU), and the bad
/// ones here: signed by another CA, expired.
struct TestCertificates {
    let folder: URL
    let openssl: String

    /// Nil (with the reason printed) only where openssl cannot be installed.
    init?(in folder: URL) throws {
        guard let openssl = ClusterHarness.tool("openssl", package: "openssl") else { return nil }
        (self.folder, self.openssl) = (folder.appendingPathComponent("pki"), openssl)
        let made = ClusterHarness.run(["cluster/make-certificates", self.folder.path, "localhost", "127.0.0.1", "--days", "30"], timeout: 120)
        guard made.status == 0 else { throw HarnessError("cluster/make-certificates: \(made.output)") }
        try authority("other-ca")
        try issue("stranger", subject: "/CN=stranger/OU=client", by: "other-ca")
        try issue("expired", subject: "/CN=expired/OU=client", by: "ca", days: -1)
        // The coordinator's, out of date.
        try issue("old-coordinator", subject: "/CN=coordinator", by: "ca", names: "DNS:localhost,IP:127.0.0.1", days: -1)
        // A worker's certificate that also names the coordinator's address: a worker posing as the coordinator.
        try issue("rogue", subject: "/CN=rogue/OU=worker", by: "ca", names: "DNS:localhost,IP:127.0.0.1")
    }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// `--tls-cert`, `--tls-key` of `name`, and `--tls-ca` (the project's CA unless told).
    func arguments(_ name: String?, ca: String = "ca") -> [String] {
        (name.map { ["--tls-cert", path("\($0).pem"), "--tls-key", path("\($0).key")] } ?? []) + ["--tls-ca", path("\(ca).pem")]
    }

    private func openssl(_ arguments: [String]) throws {
        let run = ClusterHarness.run([openssl] + arguments, timeout: 60)
        guard run.status == 0 else { throw HarnessError("openssl \(arguments.joined(separator: " ")): \(run.output)") }
    }

    private func authority(_ name: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("\(name).key"),
                     "-out", path("\(name).pem"), "-days", "30", "-subj", "/CN=ptp test \(name)"])
    }

    private func issue(_ name: String, subject: String, by ca: String, names: String? = nil, days: Int = 30) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("\(name).key"),
                     "-out", path("\(name).csr"), "-subj", subject])
        var arguments = ["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(ca).pem"), "-CAkey", path("\(ca).key"), "-CAcreateserial",
                         "-out", path("\(name).pem"), "-days", String(days)]
        if let names {
            try Data("subjectAltName=\(names)\n".utf8).write(to: folder.appendingPathComponent("\(name).ext"))
            arguments += ["-extfile", path("\(name).ext")]
        }
        try openssl(arguments)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path("\(name).key"))
    }
}
