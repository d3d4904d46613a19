import EditContract
import Engine
import Foundation

/// One UNet forward in Swift and in PyTorch (and, when asked, OpenVINO), in float32 and in
/// bfloat16, on the same weights and inputs, in the same run (`ptp bench unet`). Each side and
/// precision runs in a process of its own, so that peak memory is its own: this executable again
/// (`runChild`), and the repository's reference/bench_pytorch.py and bench_openvino.py.
public struct UNetComparison {
    public var run: ComparisonRun

    public init(_ run: ComparisonRun) { self.run = run }

    /// Runs every side; returns the report.
    public func report() throws -> String {
        let component = try ModelDirectory(url: run.model).component("unet", supportedClasses: ["UNet2DConditionModel"])
        let configuration = try UNetConfiguration(component.config)
        let (batch, latent) = (run.batch, run.latent)
        return try run.report(component: "unet", directory: component.directory, title: "UNet forward: batch \(batch), latent \(latent)x\(latent)") {
            var generator = TorchGenerator(seed: 0)
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
            return tensors
        }
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
