import EditContract
import Engine
import Foundation

/// One VAE decode (latents to pixels, the last stage of every edit) in Swift, PyTorch and, when
/// asked, OpenVINO, in float32 and bfloat16, on the same weights and latents, in the same run
/// (`ptp bench vae`); each side and precision in a process of its own, as `UNetComparison`.
public struct DecoderComparison {
    public var model: URL
    public var batch: Int
    public var latent: Int
    public var threads: Int
    public var repeats: Int
    public var precisions: [Precision]
    public var python: String?
    public var swiftOnly: Bool
    public var openVINO: Bool
    public var executable: URL
    public var childArguments: [String]

    public init(model: URL, batch: Int, latent: Int, threads: Int, repeats: Int, precisions: [Precision], python: String?, swiftOnly: Bool,
                openVINO: Bool, executable: URL, childArguments: [String]) {
        (self.model, self.batch, self.latent, self.threads, self.repeats, self.precisions) = (model, batch, latent, threads, repeats, precisions)
        (self.python, self.swiftOnly, self.openVINO, self.executable, self.childArguments) = (python, swiftOnly, openVINO, executable, childArguments)
    }

    /// Runs every side; returns the report.
    public func run() throws -> String {
        let peak = KernelReport.measureGEMM(m: 2048, n: 2048, k: 2048, repeats: 5)
        let component = try ModelDirectory(url: model).component("vae", supportedClasses: ["AutoencoderKL"])
        let autoencoder = try AutoencoderKL(component: component)
        let configuration = autoencoder.configuration
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // Latents of a sampled image's scale (unit variance once multiplied by the scaling
        // factor), divided by it as the decoder receives them: [batch, latent channels, h, w].
        var generator = TorchGenerator(seed: 0)
        let noise = generator.normal([batch, configuration.latentChannels, latent, latent])
        let latents = Tensor(shape: noise.shape, values: noise.scalars.map { $0 / configuration.scalingFactor })
        let inputs = directory.appendingPathComponent("inputs.safetensors")
        try SafeTensorsWriter.write(["latents": latents], to: inputs)
        progress(String(format: "sgemm peak: %.1f GFLOP/s", peak))

        let swift = try precisions.map { precision in
            try SwiftSide.run(executable, childArguments, precision: precision, inputs: inputs, scratch: directory)
        }
        let peers = PeerComparison(component: "vae", directory: component.directory, inputs: inputs, scratch: directory, threads: threads,
                                   repeats: repeats, python: python, root: PythonPeer.repositoryRoot(of: executable))
        let rows = try peers.rows(swift: swift, pytorch: !swiftOnly, openVINO: openVINO)
        let side = latent << (configuration.blockOutChannels.count - 1)
        return ([
            "VAE decode: batch \(batch), latent \(latent)x\(latent) to \(side)x\(side) px, \(threads) threads, model \(model.lastPathComponent)",
            "CPU: \(CPUDescription.current); \(Engine.oneDNNConfiguration)",
            String(format: "sgemm peak (OpenBLAS, 2048^3): %.1f GFLOP/s", peak),
        ] + PeerComparison.table(rows, peak: peak)).joined(separator: "\n")
    }

    /// A child run: loads the VAE, times its decoder on the parent's latents at one precision,
    /// saves the pixels and what it measured beside them.
    public static func runChild(model: URL, inputs: URL, output: URL, precision: Precision, repeats: Int) throws {
        let autoencoder = try AutoencoderKL(component: try ModelDirectory(url: model).component("vae", supportedClasses: ["AutoencoderKL"]))
        let latents = try SafeTensorsFile(url: inputs).tensor("latents")
        try SwiftSide.measure(precision: precision, repeats: repeats, output: output) {
            autoencoder.decode(latents, precision: precision)
        }
    }
}
