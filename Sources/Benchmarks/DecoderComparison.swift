import EditContract
import Engine
import Foundation

/// One VAE decode (latents to pixels, the last stage of every edit) in Swift, PyTorch and, when
/// asked, OpenVINO, in float32 and bfloat16, on the same weights and latents, in the same run
/// (`ptp bench vae`); each side and precision in a process of its own, as `UNetComparison`.
public struct DecoderComparison {
    public var run: ComparisonRun

    public init(_ run: ComparisonRun) { self.run = run }

    /// Runs every side; returns the report.
    public func report() throws -> String {
        let component = try ModelDirectory(url: run.model).component("vae", supportedClasses: ["AutoencoderKL"])
        let configuration = try AutoencoderKL(component: component).configuration
        let (batch, latent) = (run.batch, run.latent)
        let side = latent << (configuration.blockOutChannels.count - 1)
        return try run.report(component: "vae", directory: component.directory,
                              title: "VAE decode: batch \(batch), latent \(latent)x\(latent) to \(side)x\(side) px") {
            // Latents of a sampled image's scale (unit variance once multiplied by the scaling
            // factor), divided by it as the decoder receives them: [batch, latent channels, h, w].
            var generator = TorchGenerator(seed: 0)
            let noise = generator.normal([batch, configuration.latentChannels, latent, latent])
            return ["latents": Tensor(shape: noise.shape, values: noise.scalars.map { $0 / configuration.scalingFactor })]
        }
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
