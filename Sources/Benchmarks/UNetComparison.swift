import EditContract
import Engine
import Foundation

/// One UNet forward in Swift and in PyTorch (and, when asked, OpenVINO), in float32 and in
/// bfloat16, on the same weights and inputs, in the same run (`ptp bench unet`). Each side and
/// precision runs in a process of its own, so that peak memory is its own: this executable again
/// (`runChild`), and the repository's reference/bench_pytorch.py and bench_openvino.py.
public struct UNetComparison {
    public var model: URL
    public var batch: Int
    public var latent: Int
    public var threads: Int
    public var repeats: Int
    public var precisions: [Precision]
    /// A Python with torch and diffusers; nil for scripts/python-env's.
    public var python: String?
    public var swiftOnly: Bool
    /// Adds OpenVINO's sides, converted from the same diffusers module.
    public var openVINO: Bool
    /// This executable, and the arguments that run its child side (`--child INPUTS:OUTPUT`
    /// and one `--precision` are added).
    public var executable: URL
    public var childArguments: [String]

    public init(model: URL, batch: Int, latent: Int, threads: Int, repeats: Int, precisions: [Precision], python: String?, swiftOnly: Bool,
                openVINO: Bool = false, executable: URL, childArguments: [String]) {
        (self.model, self.batch, self.latent, self.threads, self.repeats, self.precisions) = (model, batch, latent, threads, repeats, precisions)
        (self.python, self.swiftOnly, self.openVINO, self.executable, self.childArguments) = (python, swiftOnly, openVINO, executable, childArguments)
    }

    /// Runs every side; returns the report.
    public func run() throws -> String {
        // The sgemm peak first, on a quiet process: every figure is reported against it.
        let peak = KernelReport.measureGEMM(m: 2048, n: 2048, k: 2048, repeats: 5)
        let component = try ModelDirectory(url: model).component("unet", supportedClasses: ["UNet2DConditionModel"])
        let configuration = try UNetConfiguration(component.config)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = TorchGenerator(seed: 0)
        let inputs = directory.appendingPathComponent("inputs.safetensors")
        var tensors = [
            "sample": generator.normal([batch, configuration.inChannels, latent, latent]),
            "context": generator.normal([batch, 77, configuration.crossAttentionWidth]),
            "timesteps": Tensor(shape: [batch], values: (0..<batch).map { Float(981 - 20 * $0) }),
        ]
        if let embedding = configuration.textTimeEmbedding {
            // SDXL: a pooled text embedding, and the time ids of a square image of this latent's size.
            tensors["text_embeds"] = generator.normal([batch, embedding.pooledWidth])
            let side = Float(latent * 8)
            tensors["time_ids"] = Tensor(shape: [batch, 6], values: Array(Array(repeating: [side, side, 0, 0, side, side], count: batch).joined()))
        }
        try SafeTensorsWriter.write(tensors, to: inputs)
        progress(String(format: "sgemm peak: %.1f GFLOP/s", peak))

        let swift = try precisions.map { precision in
            try SwiftSide.run(executable, childArguments, precision: precision, inputs: inputs, scratch: directory)
        }
        let peers = PeerComparison(component: "unet", directory: component.directory, inputs: inputs, scratch: directory, threads: threads,
                                   repeats: repeats, python: python, root: PythonPeer.repositoryRoot(of: executable))
        let rows = try peers.rows(swift: swift, pytorch: !swiftOnly, openVINO: openVINO)
        return ([
            "UNet forward: batch \(batch), latent \(latent)x\(latent), \(threads) threads, model \(model.lastPathComponent)",
            "CPU: \(CPUDescription.current); \(Engine.oneDNNConfiguration)",
            String(format: "sgemm peak (OpenBLAS, 2048^3): %.1f GFLOP/s", peak),
        ] + PeerComparison.table(rows, peak: peak)).joined(separator: "\n")
    }

    /// A child run: loads the UNet, times it on the parent's inputs at one precision, saves the
    /// output and what it measured beside it.
    public static func runChild(model: URL, inputs: URL, output: URL, precision: Precision, repeats: Int) throws {
        let component = try ModelDirectory(url: model).component("unet", supportedClasses: ["UNet2DConditionModel"])
        let unet = try UNet2DConditionModel(component: component)
        let file = try SafeTensorsFile(url: inputs)
        let sample = try file.tensor("sample"), context = try file.tensor("context")
        let timesteps = try file.tensor("timesteps").scalars
        let added = file.entries["text_embeds"] == nil ? nil
            : UNetAddedConditions(textEmbeds: try file.tensor("text_embeds"), timeIDs: try file.tensor("time_ids"))
        try SwiftSide.measure(precision: precision, repeats: repeats, output: output) {
            unet(sample, timesteps: timesteps, context: context, added: added, precision: precision)
        }
    }
}
