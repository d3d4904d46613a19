import EditContract
/// The cascade's second stage: each image upsampled by a UNet conditioned on its prompt and on
/// the bilinearly upsampled image (noise-augmented at the recommended level), guided with the
/// empty prompt, deterministic DDIM.
public struct SuperResolution: Sendable {
    let model: DiffusionModel
    let stage: SuperResolutionStage

    public init(model: DiffusionModel, stage: SuperResolutionStage) {
        self.model = model
        self.stage = stage
    }

    /// image [1, 3, h, w] in [-1, 1] -> [1, 3, h*f, w*f]
    public func upscale(_ image: Tensor, prompt: String, seed: UInt64, precision: Precision = .fp32,
                        progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        let defaults = model.defaults
        let (height, width) = (image.shape[2] * stage.factor, image.shape[3] * stage.factor)
        let guidance = defaults.superResolutionGuidance
        let guided = guidance != 1
        let conditional = try model.context([prompt], truncate: true, precision: precision)
        let context = guided ? Tensor.concatenate([try model.context([""], truncate: false, precision: precision), conditional], axis: 0) : conditional
        var generator = TorchGenerator(seed: seed)
        var x = generator.normal([1, stage.unet.configuration.outChannels, height, width])
        var low = image.resizedBilinear(height: height, width: width)
        let level = defaults.superResolutionNoiseLevel
        if level > 0 { low = stage.scheduler.addNoise(low, noise: generator.normal(low.shape), timestep: level) }
        let steps = defaults.superResolutionSteps
        let timesteps = stage.scheduler.timesteps(steps: steps)
        for (step, t) in timesteps.enumerated() {
            let input = Tensor.concatenate([x, low], axis: 1)
            let batch = guided ? Tensor.concatenate([input, input], axis: 0) : input
            let output = stage.unet(batch, timesteps: Array(repeating: Float(t), count: batch.shape[0]), context: context,
                                    classLabels: Array(repeating: level, count: batch.shape[0]), precision: precision)
            let prediction = guided ? Sampler.guide(unconditional: output.slice(0..<1), conditional: output.slice(1..<2), scale: guidance) : output
            x = stage.scheduler.step(prediction, timestep: t, sample: x, steps: steps)
            progress?(step + 1, timesteps.count)
        }
        return x
    }
}
