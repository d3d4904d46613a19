import Coordinator
import Foundation
import Imaging
import Testing

/// The cluster as its operators watch it: a real Prometheus server scraping the coordinator,
/// and the status page rendered by a real browser.
extension ClusterTests {
    @Test("Prometheus scrapes per-node image rates of two workers; the status page in headless Chromium names every worker and job",
          .timeLimit(.minutes(10)))
    func monitoring() throws {
        let harness = try ClusterHarness(name: "monitoring")
        defer { harness.stopAll() }
        let metricsPort = harness.port + 1
        try harness.startCoordinator(["--metrics-port", String(metricsPort)])
        let prometheusPort = harness.port + 2
        let prometheus = try startPrometheus(harness, scraping: metricsPort, on: prometheusPort)
        try harness.startWorker("w1")
        try harness.startWorker("w2")
        try harness.waitForWorkers(["w1", "w2"])
        // The terminal's live view, as on a login node (here not a terminal: frame after frame).
        try harness.start("watch", ["status", "--watch", "--interval", "0.5", "--coordinator", harness.coordinatorAddress,
                                    "--secret-file", harness.secretFile.path])
        // Prometheus has scraped once before the job starts, and the job lasts some scrapes
        // (each node's series starts at zero when it joins).
        if prometheus {
            #expect(waitForQuery("up{job=\"ptp\"} == 1", port: prometheusPort, timeout: 60).count == 1,
                    "Prometheus did not scrape the coordinator: \(harness.log("prometheus").suffix(1500))")
        }
        let batch = try harness.batch("batch", count: 8, steps: 50, size: 256)
        let output = harness.directory.appendingPathComponent("out")
        let submitted = harness.submit(batch, output: output, detach: true)
        #expect(submitted.status == 0, "\(submitted.output)")
        let job = submitted.output.split(separator: "\n").last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""

        // Per-node image rates, queried from Prometheus while the job runs.
        if prometheus {
            let rates = waitForNodeRates(port: prometheusPort, nodes: ["w1", "w2"], timeout: 240)
            print("[monitoring] Prometheus rate(ptp_node_images_completed_total[30s]) per node, highest seen: \(rates.sorted { $0.key < $1.key })")
            #expect(rates.keys.sorted() == ["w1", "w2"] && rates.values.allSatisfy { $0 > 0 },
                    "rate(ptp_node_images_completed_total) per node: \(rates); prometheus log: \(harness.log("prometheus").suffix(1500))")
        }
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline && ClusterHarness.manifest(output).count < 8 { Thread.sleep(forTimeInterval: 0.5) }
        expectComplete(output, edits: 8)

        // The page's data: both workers, the job complete, the latest results.
        let host = "127.0.0.1"
        let json = try TCPProbe.request(host: host, port: metricsPort, path: "/status.json")
        #expect(json.status == 200 && json.headers.contains("application/json"), "\(json.headers)")
        let snapshot = try JSONDecoder().decode(DashboardSnapshot.self, from: Data(json.body))
        #expect(Set(snapshot.nodes.map(\.id)) == ["w1", "w2"])
        #expect(snapshot.nodes.reduce(0) { $0 + $1.history.reduce(0, +) } > 0, "no throughput in the chart's history")
        let summary = snapshot.jobs.first { $0.id == job }
        #expect(summary?.state == "completed" && summary?.imagesDone == summary?.imagesTotal && summary?.eta == nil, "\(String(describing: summary))")
        #expect(snapshot.results.count == 8)

        // A thumbnail is a small PNG of the grid; the grid link serves the file the job wrote.
        if let result = snapshot.results.first {
            let thumbnail = try TCPProbe.request(host: host, port: metricsPort, path: "/" + result.thumbnail)
            #expect(thumbnail.status == 200 && thumbnail.headers.contains("image/png"))
            let image = try PNGCodec.decode(Data(thumbnail.body))
            #expect(image.width <= 480 && image.height <= 120 && image.width > 0)
            let grid = try TCPProbe.request(host: host, port: metricsPort, path: "/" + result.grid)
            let file = try Data(contentsOf: output.appendingPathComponent(result.edit).appendingPathComponent(EditOutputs.gridName))
            #expect(grid.status == 200 && Data(grid.body) == file)
        }
        // Requests name results by job and edit only: paths that climb out are not found.
        for path in ["/results/\(job)/..%2F..%2Fsecret/grid.png", "/results/../../etc/passwd", "/results/\(job)/nope/grid.png",
                     "/results/\(job)/%2E%2E/grid.png", "/status.json/../secret"] {
            #expect(try TCPProbe.request(host: host, port: metricsPort, path: path).status == 404, "\(path)")
        }
        let post = try TCPProbe.request(host: host, port: metricsPort, path: "/", method: "POST")
        #expect(post.status == 405 && post.headers.contains("Allow: GET, HEAD"))
        // HEAD: the headers of GET, no body; the page's files; a query string is not a path.
        let head = try TCPProbe.request(host: host, port: metricsPort, path: "/status.json", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && head.headers.contains("Content-Length: ") && head.headers.contains("application/json"))
        for (path, type) in [("/", "text/html"), ("/status.css", "text/css"), ("/status.js", "text/javascript"), ("/metrics?x=1", "text/plain")] {
            let asset = try TCPProbe.request(host: host, port: metricsPort, path: path)
            #expect(asset.status == 200 && asset.headers.contains(type) && !asset.body.isEmpty, "\(path): \(asset.headers)")
        }
        // On loopback it answers to loopback names only (DNS rebinding).
        #expect(try TCPProbe.request(host: host, port: metricsPort, path: "/status.json", hostHeader: "attacker.example").status == 403)
        #expect(try TCPProbe.request(host: host, port: metricsPort, path: "/status.json", hostHeader: "localhost:\(metricsPort)").status == 200)

        // The page, as a browser renders it: the rows are drawn by its script from status.json.
        if let chromium = ClusterHarness.tool("chromium", package: "chromium") {
            let dom = ClusterHarness.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                                         "--dump-dom", "http://\(host):\(metricsPort)/"], timeout: 120).output
            for name in ["data-node=\"w1\"", "data-node=\"w2\"", "data-job=\"\(job)\"", "badge live", "state-completed"] {
                #expect(dom.contains(name), "the page lacks \(name): \(dom.suffix(3000))")
            }
            #expect(dom.components(separatedBy: "/thumbnail.png").count - 1 == 8, "thumbnails: \(dom.suffix(3000))")
        }

        // A worker that leaves is listed as gone, with why, while its throughput is in the chart.
        harness.kill("w2")
        let goneBy = Date().addingTimeInterval(30)
        var gone: DashboardSnapshot.Node?
        while Date() < goneBy && gone == nil {
            let body = try TCPProbe.request(host: host, port: metricsPort, path: "/status.json").body
            gone = try JSONDecoder().decode(DashboardSnapshot.self, from: Data(body)).nodes.first { $0.id == "w2" && $0.state == "gone" }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(gone?.reason != nil, "w2 is not listed as gone")

        // `ptp status --watch` redrew the table as the job ran, and rides out a coordinator that
        // goes away.
        harness.kill("coordinator")
        let unreachableBy = Date().addingTimeInterval(10)
        while Date() < unreachableBy && !harness.log("watch").contains("unreachable") { Thread.sleep(forTimeInterval: 0.2) }
        let watched = harness.log("watch")
        let frames = watched.components(separatedBy: "ptp status of ").count - 1
        #expect(frames >= 4 && watched.contains("w1 ") && watched.contains(job) && watched.contains("completed"), "\(watched.suffix(2000))")
        #expect(watched.contains("unreachable") && !watched.contains("Error:"), "\(watched.suffix(600))")
    }

    /// Starts Debian's Prometheus scraping the coordinator every second; false (with the reason
    /// printed) only where it cannot be installed here.
    private func startPrometheus(_ harness: ClusterHarness, scraping metricsPort: Int, on port: Int) throws -> Bool {
        guard let prometheus = ClusterHarness.tool("prometheus", package: "prometheus") else { return false }
        let config = harness.directory.appendingPathComponent("prometheus.yml")
        try """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: ptp
                static_configs:
                  - targets: ["127.0.0.1:\(metricsPort)"]
            """.write(to: config, atomically: true, encoding: .utf8)
        try harness.start("prometheus", executable: URL(fileURLWithPath: prometheus), [
            "--config.file=\(config.path)", "--storage.tsdb.path=\(harness.directory.appendingPathComponent("tsdb").path)",
            "--web.listen-address=127.0.0.1:\(port)",
        ])
        return true
    }

    /// Polls Prometheus's query API until every node has a positive per-second image rate;
    /// returns the highest rates seen, by node.
    private func waitForNodeRates(port: Int, nodes: [String], timeout: TimeInterval) -> [String: Double] {
        let deadline = Date().addingTimeInterval(timeout)
        var rates: [String: Double] = [:]
        while Date() < deadline {
            for (labels, rate) in query("rate(ptp_node_images_completed_total[30s])", port: port) {
                guard let node = labels["node"] else { continue }
                rates[node] = max(rates[node] ?? 0, rate)
            }
            if nodes.allSatisfy({ (rates[$0] ?? 0) > 0 }) { return rates }
            Thread.sleep(forTimeInterval: 1)
        }
        return rates
    }

    /// Polls until `expression` returns a sample; its samples, or none at the timeout.
    private func waitForQuery(_ expression: String, port: Int, timeout: TimeInterval) -> [([String: String], Double)] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let samples = query(expression, port: port)
            if !samples.isEmpty { return samples }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return []
    }

    /// An instant query through Prometheus's HTTP API: each sample's labels and value.
    private func query(_ expression: String, port: Int) -> [([String: String], Double)] {
        let path = "/api/v1/query?query=" + (expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? expression)
        guard let response = try? TCPProbe.request(host: "127.0.0.1", port: port, path: path), response.status == 200,
              let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
              let data = object["data"] as? [String: Any], let results = data["result"] as? [[String: Any]] else { return [] }
        return results.compactMap { result in
            guard let labels = result["metric"] as? [String: String], let value = result["value"] as? [Any],
                  let text = value.last as? String, let number = Double(text) else { return nil }
            return (labels, number)
        }
    }
}
