import EditContract
import Imaging

/// Real-image editing: an image and its caption to the latents Prompt-to-Prompt starts from.
struct ImageInversion: Sendable {
    let model: DiffusionModel

    init(model: DiffusionModel) { self.model = model }

    /// The image [1, 3, H, W] in [-1, 1] as the model's sample: the VAE's mean latent times the
    /// scaling factor, or the pixels themselves for pixel-space models.
    func encode(_ image: Tensor, precision: Precision) -> Tensor {
        guard let autoencoder = model.autoencoder else { return image }
        return autoencoder.encode(image, precision: precision).mean * autoencoder.configuration.scalingFactor
    }

    /// A picture resized to the edit's size, as a [1, 3, H, W] tensor: bilinearly, after
    /// averaging k x k blocks when it is at least k >= 2 times larger on both sides (bilinear
    /// alone would skip pixels and alias a photograph shrunk to a model's size).
    static func tensor(of image: RGBImage, height: Int, width: Int) -> Tensor {
        let tensor = image.tensor().reshaped([1, 3, image.height, image.width])
        guard image.height != height || image.width != width else { return tensor }
        let factor = min(image.height / height, image.width / width)
        return (factor >= 2 ? boxShrunk(tensor, by: factor) : tensor).resizedBilinear(height: height, width: width)
    }

    /// [1, C, H, W] -> [1, C, H / k, W / k], each value the mean of a k x k block (a remainder
    /// of fewer than k rows or columns is dropped).
    static func boxShrunk(_ tensor: Tensor, by k: Int) -> Tensor {
        let (channels, height, width) = (tensor.shape[1], tensor.shape[2], tensor.shape[3])
        let (outHeight, outWidth) = (height / k, width / k)
        var result = Tensor.zeros([1, channels, outHeight, outWidth])
        let scale = 1 / Float(k * k)
        tensor.withUnsafeBufferPointer { input in
            result.withUnsafeMutableBufferPointer { output in
                for c in 0..<channels {
                    for y in 0..<(outHeight * k) {
                        let row = (c * height + y) * width
                        let outRow = (c * outHeight + y / k) * outWidth
                        for x in 0..<(outWidth * k) { output[outRow + x / k] += input[row + x] * scale }
                    }
                }
            }
        }
        return result
    }

    /// The DDIM inversion trajectory of `sample` with `prompt` (conditional only) through
    /// `timesteps` (the edit's, descending, whole numbers): element k is the sample k steps into
    /// the noise, element 0 the clean one, the last the start of editing. Each step goes from
    /// the previous timestep's alpha (the scheduler's final alpha before the first) to the next
    /// one's, the UNet evaluated at the next, as Prompt-to-Prompt's null-text notebook inverts;
    /// at DDIM's own timesteps it is that notebook's step exactly.
    func trajectory(of sample: Tensor, prompt: String, settings: SamplingSettings, timesteps: [Int],
                    progress: ((Int, Int) -> Void)? = nil) throws -> [Tensor] {
        // The source prompt's full conditioning (SDXL's pooled embedding and size ids included).
        let conditioning = try Sampler(model: model).conditioning([prompt], settings: settings)
        let scheduler = model.ddim
        var path = [sample]
        var x = sample
        var current: Int?
        for (index, t) in timesteps.reversed().enumerated() {
            let noise = model.unet(x, timesteps: [Float(t)], context: conditioning.context, added: conditioning.added, precision: settings.precision)
            x = scheduler.inversionStep(noise, from: current, to: t, sample: x)
            current = t
            path.append(x)
            progress?(index + 1, timesteps.count)
        }
        return path
    }
}
