import EditContract
import Engine
import Foundation

/// What one side of a component benchmark measured (Swift, PyTorch or OpenVINO, at one precision).
struct SideRun: Codable {
    var seconds: Double
    var gflops: Double
    var peakMiB: Double
    var detail: String
}

/// One row of a component benchmark: the side, what it measured, its output.
struct SideRow {
    var engine: String
    var precision: Precision
    var run: SideRun
    var output: Tensor

    var name: String { "\(engine) \(precision.rawValue)" }
}

/// The peers of a Swift component benchmark (`ptp bench unet`, `ptp bench vae`): the same
/// diffusers component run by PyTorch (reference/bench_pytorch.py) and, when asked, by OpenVINO
/// (reference/bench_openvino.py, converted from the same module), each precision in a process of
/// its own so that peak memory is its own, on the inputs Swift wrote.
struct PeerComparison {
    /// "unet" or "vae", as the scripts' --component takes it.
    var component: String
    /// The component's diffusers folder (unet/ or vae/).
    var directory: URL
    var inputs: URL
    var scratch: URL
    var threads: Int
    var repeats: Int
    /// A Python with torch and diffusers (and openvino for its side); nil for scripts/python-env's.
    var python: String?
    var root: URL

    /// PyTorch at `precision` (bf16: weights and inputs in torch.bfloat16). `work` is the Swift
    /// side's operations per forward and its seconds, to state the peer's rate on the same work.
    func pytorch(_ precision: Precision, work: (gflops: Double, seconds: Double)?) throws -> SideRow {
        let saved = scratch.appendingPathComponent("pytorch-\(component)-\(precision).safetensors")
        let peer = try PythonPeer.run(script: "reference/bench_pytorch.py", python: python, arguments: [
            "--component", component, "--model", directory.path, "--inputs", inputs.path, "--output", saved.path,
            "--threads", String(threads), "--repeats", String(repeats), "--dtype", precision == .bf16 ? "bfloat16" : "float32"], root: root)
        let seconds = peer["seconds"]?.doubleValue ?? .nan
        let detail = "torch \(peer["torch"]?.stringValue ?? "?"), \(peer["threads"]?.intValue ?? 0) threads"
        return SideRow(engine: "pytorch", precision: precision,
                       run: SideRun(seconds: seconds, gflops: Self.rate(work, seconds: seconds), peakMiB: peer["peak_mib"]?.doubleValue ?? .nan, detail: detail),
                       output: try SafeTensorsFile(url: saved).tensor("output"))
    }

    /// OpenVINO at each of `precisions`, from one conversion of the module (float32 weights;
    /// bf16 through INFERENCE_PRECISION_HINT).
    func openVINO(_ precisions: [Precision], work: (gflops: Double, seconds: Double)?) throws -> [SideRow] {
        let ir = scratch.appendingPathComponent("openvino-\(component).xml")
        progress("openvino: converting \(directory.path)")
        let converted = try PythonPeer.run(script: "reference/bench_openvino.py", python: python, arguments: [
            "convert", "--component", component, "--model", directory.path, "--inputs", inputs.path, "--ir", ir.path], root: root)
        let version = converted["openvino"]?.stringValue?.split(separator: "-").first.map(String.init) ?? "?"
        return try precisions.map { precision in
            let saved = scratch.appendingPathComponent("openvino-\(component)-\(precision).safetensors")
            let peer = try PythonPeer.run(script: "reference/bench_openvino.py", python: python, arguments: [
                "run", "--ir", ir.path, "--inputs", inputs.path, "--output", saved.path, "--precision", precision.rawValue,
                "--threads", String(threads), "--repeats", String(repeats)], root: root)
            let seconds = peer["seconds"]?.doubleValue ?? .nan
            let actual = peer["precision"]?.stringValue ?? "?"
            guard actual == precision.rawValue || (precision == .fp32 && actual == "f32") else {
                throw BenchmarkError("OpenVINO ran \(actual) when asked for \(precision.rawValue) (does its CPU plugin support it here?)")
            }
            return SideRow(engine: "openvino", precision: precision,
                           run: SideRun(seconds: seconds, gflops: Self.rate(work, seconds: seconds), peakMiB: peer["peak_mib"]?.doubleValue ?? .nan,
                                        detail: "openvino \(version), \(peer["threads"]?.intValue ?? 0) threads"),
                           output: try SafeTensorsFile(url: saved).tensor("output"))
        }
    }

    /// Swift's rows, then PyTorch's at the same precisions (fp32 always: every side's error is
    /// measured against it), then OpenVINO's when asked.
    func rows(swift: [SideRow], pytorch: Bool, openVINO: Bool) throws -> [SideRow] {
        let precisions = swift.map(\.precision)
        let work = swift.first.map { (gflops: $0.run.gflops, seconds: $0.run.seconds) }
        var rows = swift
        if pytorch {
            for precision in Precision.allCases where precisions.contains(precision) || precision == .fp32 {
                rows.append(try self.pytorch(precision, work: work))
            }
        }
        if openVINO { rows += try self.openVINO(precisions, work: work) }
        return rows
    }

    /// The same work's rate at `seconds`.
    static func rate(_ work: (gflops: Double, seconds: Double)?, seconds: Double) -> Double {
        guard let work else { return .nan }
        return work.gflops * work.seconds / seconds
    }

    /// The report's table: each row's time, rate against the sgemm peak, peak memory and error
    /// against PyTorch fp32, then Swift's wall-time ratio to each peer at each precision.
    static func table(_ rows: [SideRow], peak: Double) -> [String] {
        let reference = rows.first { $0.engine == "pytorch" && $0.precision == .fp32 }?.output
        var lines = ["side            time (s)   GFLOP/s  of peak   peak memory   error vs pytorch fp32 (max abs, rms)"]
        for row in rows {
            let error = reference.map { String(format: "%.3g, %.3g", row.output.maxAbsDifference($0), row.output.rmsDifference($0)) } ?? "-"
            lines.append(row.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                + String(format: " %9.2f %9.1f %8.0f%% %9.0f MiB   %@", row.run.seconds, row.run.gflops, 100 * row.run.gflops / peak,
                         row.run.peakMiB, error) + "  (\(row.run.detail))")
        }
        if let reference { lines.append(String(format: "output scale (pytorch fp32): %.3g", reference.maxAbs)) }
        for peer in ["pytorch", "openvino"] {
            for ours in rows where ours.engine == "swift" {
                guard let theirs = rows.first(where: { $0.engine == peer && $0.precision == ours.precision }) else { continue }
                lines.append(String(format: "swift / %@ wall time, %@: %.2f", peer, ours.precision.rawValue, ours.run.seconds / theirs.run.seconds))
            }
        }
        return lines
    }
}

/// The Swift side of a component benchmark, run as a child process of this executable.
enum SwiftSide {
    /// Runs the child at `precision` on `inputs` (`--child INPUTS:OUTPUT`); reads back what it
    /// measured and its output.
    static func run(_ executable: URL, _ childArguments: [String], precision: Precision, inputs: URL, scratch: URL) throws -> SideRow {
        let saved = scratch.appendingPathComponent("swift-\(precision).safetensors")
        try Processes.run(executable, childArguments + ["--precision", precision.rawValue, "--child", inputs.path + ":" + saved.path])
        let run = try JSONDecoder().decode(SideRun.self, from: Data(contentsOf: URL(fileURLWithPath: saved.path + ".json")))
        return SideRow(engine: "swift", precision: precision, run: run, output: try SafeTensorsFile(url: saved).tensor("output"))
    }

    /// In the child: times `forward` after a warm-up run (the best of `repeats`), counting its
    /// operations, and writes its output to `output` and the measurement beside it.
    static func measure(precision: Precision, repeats: Int, output: URL, _ forward: () -> Tensor) throws {
        var best = Double.infinity, operations = 0
        var result = Tensor.zeros([1])
        for run in 0...repeats {
            OperationCount.total.store(0, ordering: .relaxed)
            let start = Date()
            result = forward()
            let seconds = Date().timeIntervalSince(start)
            operations = OperationCount.total.load(ordering: .relaxed)
            progress(String(format: "swift %@ run %d: %.2f s", precision.rawValue, run, seconds))
            if run > 0 || repeats == 0 { best = min(best, seconds) }
        }
        let measured = SideRun(seconds: best, gflops: Double(operations) / best / 1e9, peakMiB: PeakMemory.selfMiB(), detail: "oneDNN")
        try SafeTensorsWriter.write(["output": result], to: output)
        try JSONEncoder().encode(measured).write(to: URL(fileURLWithPath: output.path + ".json"))
    }
}
