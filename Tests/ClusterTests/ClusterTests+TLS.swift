import Foundation
import Testing

/// TLS, roles and the output root with real processes: certificates made by `openssl`, the
/// coordinator's port watched by a recording proxy.
extension ClusterTests {
    @Test("mutual TLS, a certificate per role and no secret: the 24-edit batch over 2 workers is bit-identical to ptp edit, and no prompt text crosses the port",
          .timeLimit(.minutes(10)))
    func tlsCluster() throws {
        let harness = try ClusterHarness(name: "tls")
        defer { harness.stopAll() }
        guard let pki = try TestCertificates(in: harness.directory) else { return }
        (harness.coordinatorCredentials, harness.workerCredentials, harness.clientCredentials) =
            (pki.arguments("coordinator"), pki.arguments("worker"), pki.arguments("client"))
        try harness.startCoordinator(["--output-root", harness.directory.path])
        // Workers and the client reach the coordinator through a proxy that keeps every byte.
        let proxy = try RecordingProxy(targetPort: harness.port)
        defer { proxy.stop() }
        harness.addressOverride = "127.0.0.1:\(proxy.port)"
        try harness.startWorker("w1")
        try harness.startWorker("w2", extra: Self.bfloat16 ? ["--precision", "fp32"] : [])
        try harness.waitForWorkers(["w1", "w2"])
        // The plain cluster test's batch: mixed precisions and schedulers.
        let batch = try mixedBatch(harness)
        let output = harness.directory.appendingPathComponent("out")
        let submitted = harness.submit(batch, output: output)
        #expect(submitted.status == 0, "\(submitted.output)")
        expectComplete(output, edits: 24)
        try expectIdenticalToSingleMachine(batch, output: output, harness: harness)
        let captured = proxy.bytes.count
        #expect(captured > 50_000, "the proxy saw \(captured) bytes: the cluster did not run through it")
        for text in ["circle on a blue background", "edit-0", "a red circle", ClusterHarness.model] {
            #expect(!proxy.saw(text), "'\(text)' crossed the network in the clear")
        }
        print("[cluster] mutual TLS: 24 edits over 2 workers, \(captured) bytes through the recording proxy, no prompt text among them")

        // The same capture of a plaintext coordinator shows the prompts: the check above can fail.
        let plain = try ClusterHarness(name: "plain")
        defer { plain.stopAll() }
        try plain.startCoordinator()
        let plainProxy = try RecordingProxy(targetPort: plain.port)
        defer { plainProxy.stop() }
        plain.addressOverride = "127.0.0.1:\(plainProxy.port)"
        #expect(plain.submit(batch, output: plain.directory.appendingPathComponent("out"), detach: true).status == 0)
        #expect(plainProxy.saw("circle on a blue background"), "a plaintext job's prompts were not seen: the capture proves nothing")
    }

    @Test("TLS failures are named on both ends and the coordinator keeps serving: plaintext on a TLS port, TLS on a plaintext one, a wrong CA, an untrusted, expired or missing certificate, a wrong name",
          .timeLimit(.minutes(5)))
    func tlsRefusals() throws {
        let harness = try ClusterHarness(name: "tls-refusals")
        defer { harness.stopAll() }
        guard let pki = try TestCertificates(in: harness.directory) else { return }
        // Mutual TLS, with the secret as well (a peer may use either credential once its certificate is trusted).
        harness.coordinatorCredentials = ["--secret-file", harness.secretFile.path] + pki.arguments("coordinator")
        harness.clientCredentials = pki.arguments("status")
        try harness.startCoordinator()
        let address = "127.0.0.1:\(harness.port)"
        func status(_ arguments: [String], at target: String? = nil) -> String {
            let run = ClusterHarness.run([ClusterHarness.ptp.path, "status", "--coordinator", target ?? address] + arguments, timeout: 20)
            #expect(run.status != 0, "ptp status \(arguments) succeeded")
            return run.output
        }
        let secret = ["--secret-file", harness.secretFile.path]
        let cases: [(what: String, arguments: [String], target: String?, client: String, coordinator: String)] = [
            ("plaintext on the TLS port", secret, nil, "takes TLS only", "takes TLS only"),
            ("the coordinator's certificate checked against another CA", pki.arguments("client", ca: "other-ca"), nil,
             "certificate is not trusted", "does not trust this node's certificate"),
            ("a client certificate from another CA", pki.arguments("stranger"), nil, "does not trust this node's certificate",
             "the peer's certificate is not trusted"),
            ("an expired client certificate", pki.arguments("expired"), nil, "refused this node's certificate as expired", "expired on"),
            ("no client certificate under mutual TLS", secret + pki.arguments(nil), nil, "asks for a certificate", "presented no certificate"),
            ("a name the certificate does not hold", pki.arguments("client"), "127.0.0.2:\(harness.port)", "does not name the address",
             "closed the connection right after TLS"),
        ]
        for (what, arguments, target, client, coordinator) in cases {
            let before = harness.log("coordinator")
            let said = status(arguments, at: target)
            #expect(said.contains(client), "\(what): the client said \(said)")
            var logged = ""
            for _ in 0..<50 where !logged.contains(coordinator) {
                logged = String(harness.log("coordinator").dropFirst(before.count))
                Thread.sleep(forTimeInterval: 0.1)
            }
            #expect(logged.contains(coordinator), "\(what): the coordinator logged \(logged)")
            #expect(harness.status().status == 0, "the coordinator stopped serving after \(what)")
        }
        // A worker without TLS stops at once with the reason, rather than trying for ever.
        let worker = ClusterHarness.run([ClusterHarness.ptp.path, "worker", "--coordinator", address, "--model", ClusterHarness.model,
                                         "--threads", "1"] + secret, timeout: 120)
        #expect(worker.status != 0 && worker.output.contains("takes TLS only"), "\(worker.output)")

        // TLS against a plaintext coordinator, named on both ends.
        let plain = try ClusterHarness(name: "tls-plain")
        defer { plain.stopAll() }
        try plain.startCoordinator()
        let said = status(["--secret-file", plain.secretFile.path] + pki.arguments(nil), at: "127.0.0.1:\(plain.port)")
        #expect(said.contains("did not answer in TLS"), "\(said)")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(plain.log("coordinator").contains("speaks TLS"), "\(plain.log("coordinator"))")
        #expect(plain.status().status == 0)

        // A coordinator whose certificate expired: it warns as it starts, every peer names the expiry, and it logs the refusal.
        let expired = try ClusterHarness(name: "tls-expired")
        defer { expired.stopAll() }
        try expired.start("coordinator", ["coordinator", "--port", String(expired.port), "--state", expired.directory.appendingPathComponent("state").path,
                                          "--secret-file", expired.secretFile.path, "--tls-cert", pki.path("old-coordinator.pem"),
                                          "--tls-key", pki.path("old-coordinator.key")])
        var late = ""
        for _ in 0..<50 where !late.contains("expired on") {
            late = status(["--secret-file", expired.secretFile.path] + pki.arguments(nil), at: "127.0.0.1:\(expired.port)")
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(late.contains("the coordinator's certificate expired on"), "\(late)")
        Thread.sleep(forTimeInterval: 0.5)
        let expiredLog = expired.log("coordinator")
        #expect(expiredLog.contains("warning: --tls-cert: the certificate in") && expiredLog.contains("refused this node's certificate as expired"),
                "\(expiredLog)")

        // A server with a worker's certificate, valid for the address and signed by the CA, is not taken for the coordinator.
        let rogue = try ClusterHarness(name: "tls-rogue")
        defer { rogue.stopAll() }
        rogue.coordinatorCredentials = ["--secret-file", rogue.secretFile.path, "--tls-cert", pki.path("rogue.pem"), "--tls-key", pki.path("rogue.key")]
        rogue.clientCredentials = ["--secret-file", rogue.secretFile.path] + pki.arguments(nil)
        try rogue.start("coordinator", ["coordinator", "--port", String(rogue.port), "--state", rogue.directory.appendingPathComponent("state").path]
                        + rogue.coordinatorCredentials)
        var posed = ""
        for _ in 0..<50 where !posed.contains("not a coordinator's") {
            posed = status(rogue.clientCredentials, at: "127.0.0.1:\(rogue.port)")
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(posed.contains("presented a worker certificate") && posed.contains("not a coordinator's"), "\(posed)")
    }

    @Test("roles and the output root with real processes: each secret signs in only its role, outputs stay under --output-root, and edge errors are named",
          .timeLimit(.minutes(5)))
    func rolesAndOutputRoot() throws {
        let harness = try ClusterHarness(name: "roles")
        defer { harness.stopAll() }
        let workerSecret = harness.directory.appendingPathComponent("worker-secret"), clientSecret = harness.directory.appendingPathComponent("client-secret")
        for (file, text) in [(workerSecret, "the workers' secret \(UUID())"), (clientSecret, "the clients' secret \(UUID())")] {
            try Data(text.utf8).write(to: file)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        }
        let root = harness.directory.appendingPathComponent("outputs")
        let outside = harness.directory.appendingPathComponent("private")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("link"), withDestinationURL: outside)
        harness.coordinatorCredentials = ["--worker-secret-file", workerSecret.path, "--client-secret-file", clientSecret.path]
        harness.clientCredentials = ["--secret-file", clientSecret.path]
        let metricsPort = harness.port + 1
        try harness.startCoordinator(["--output-root", root.path, "--metrics-port", String(metricsPort)])
        let address = "127.0.0.1:\(harness.port)"
        let batch = try harness.batch("roles", count: 1)
        func submit(_ output: String, secret: URL = clientSecret, in folder: URL = ClusterHarness.root) -> (status: Int32, output: String) {
            let run = ClusterHarness.run(["sh", "-c", "cd '\(folder.path)' && '\(ClusterHarness.ptp.path)' submit '\(batch.path)' --coordinator \(address) "
                                          + "--output '\(output)' --secret-file '\(secret.path)' --detach"], timeout: 60)
            return (run.status, run.output)
        }
        // A worker's secret cannot submit; a client's cannot run tasks.
        let asWorker = submit("run-0", secret: workerSecret)
        #expect(asWorker.status != 0 && asWorker.output.contains("wrong client secret"), "\(asWorker.output)")
        let worker = ClusterHarness.run([ClusterHarness.ptp.path, "worker", "--coordinator", address, "--model", ClusterHarness.model, "--threads", "1",
                                         "--secret-file", clientSecret.path], timeout: 120)
        #expect(worker.status != 0 && worker.output.contains("wrong worker secret"), "\(worker.output)")
        // Outputs: relative to the root wherever the client runs; outside, '..' and a link out are refused.
        let accepted = submit("run-1", in: outside)
        #expect(accepted.status == 0 && accepted.output.contains("results in \(root.path)/run-1"), "\(accepted.output)")
        for (path, why) in [(outside.path + "/run", "outside this coordinator's output root"), ("../private/run", "'..'"), ("link/run", "symbolic link")] {
            let refused = submit(path)
            #expect(refused.status != 0 && refused.output.contains(why) && refused.output.contains("give a folder under"), "\(path): \(refused.output)")
        }
        #expect((try FileManager.default.contentsOfDirectory(atPath: outside.path)).isEmpty, "something was written outside the root")
        // A worker pointed at the metrics port stops, saying it reached a web server.
        let misdirected = ClusterHarness.run([ClusterHarness.ptp.path, "worker", "--coordinator", "127.0.0.1:\(metricsPort)", "--model", ClusterHarness.model,
                                              "--threads", "1", "--secret-file", workerSecret.path], timeout: 120)
        #expect(misdirected.status != 0 && misdirected.output.contains("answered in HTTP"), "\(misdirected.output)")
        // --state naming a file.
        let file = harness.directory.appendingPathComponent("state-file")
        try Data().write(to: file)
        let stateless = ClusterHarness.run([ClusterHarness.ptp.path, "coordinator", "--port", "0", "--state", file.path, "--secret-file", harness.secretFile.path],
                                           timeout: 30)
        #expect(stateless.status != 0 && stateless.output.contains("--state: \(file.path) is a file") && !stateless.output.contains("NSError"),
                "\(stateless.output)")
        #expect(harness.status().status == 0)
    }
}
