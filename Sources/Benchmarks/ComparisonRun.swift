import EditContract
import Engine
import Foundation

/// What a component benchmark (`UNetComparison`, `DecoderComparison`) is asked to run, and the
/// run they share: the sgemm peak, a scratch folder, the inputs, Swift's sides as child
/// processes of this executable, then the peers (`PeerComparison`), then the table.
public struct ComparisonRun: Sendable {
    public var model: URL
    public var batch: Int
    public var latent: Int
    public var threads: Int
    public var repeats: Int
    public var precisions: [Precision]
    /// A Python with torch and diffusers (and openvino for its side); nil for scripts/python-env's.
    public var python: String?
    public var swiftOnly: Bool
    /// Adds OpenVINO's sides, converted from the same diffusers module.
    public var openVINO: Bool
    /// This executable, and the arguments that run its child side (`--child INPUTS:OUTPUT`
    /// and one `--precision` are added).
    public var executable: URL
    public var childArguments: [String]

    public init(model: URL, batch: Int, latent: Int, threads: Int, repeats: Int, precisions: [Precision], python: String?, swiftOnly: Bool,
                openVINO: Bool, executable: URL, childArguments: [String]) {
        (self.model, self.batch, self.latent, self.threads, self.repeats, self.precisions) = (model, batch, latent, threads, repeats, precisions)
        (self.python, self.swiftOnly, self.openVINO, self.executable, self.childArguments) = (python, swiftOnly, openVINO, executable, childArguments)
    }

    /// Runs every side of `component` ("unet" or "vae", its folder `directory`) on the tensors
    /// `inputs` writes; returns the report under `title`.
    func report(component: String, directory: URL, title: String, inputs makeInputs: () throws -> [String: Tensor]) throws -> String {
        // The sgemm peak first, on a quiet process: every figure is reported against it.
        let peak = KernelReport.measureGEMM(m: 2048, n: 2048, k: 2048, repeats: 5)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let inputs = scratch.appendingPathComponent("inputs.safetensors")
        try SafeTensorsWriter.write(try makeInputs(), to: inputs)
        progress(String(format: "sgemm peak: %.1f GFLOP/s", peak))
        let swift = try precisions.map { precision in
            try SwiftSide.run(executable, childArguments, precision: precision, inputs: inputs, scratch: scratch)
        }
        let peers = PeerComparison(component: component, directory: directory, inputs: inputs, scratch: scratch, threads: threads,
                                   repeats: repeats, python: python, root: PythonPeer.repositoryRoot(of: executable))
        let rows = try peers.rows(swift: swift, pytorch: !swiftOnly, openVINO: openVINO)
        return ([
            title + ", \(threads) threads, model \(model.lastPathComponent)",
            "CPU: \(CPUDescription.current); \(Engine.oneDNNConfiguration)",
            String(format: "sgemm peak (OpenBLAS, 2048^3): %.1f GFLOP/s", peak),
        ] + PeerComparison.table(rows, peak: peak)).joined(separator: "\n")
    }
}
