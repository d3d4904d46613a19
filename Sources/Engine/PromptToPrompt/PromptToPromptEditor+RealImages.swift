import EditContract
import Foundation
import Imaging

/// Real pictures: the size they are edited at, and their inversion.
extension PromptToPromptEditor {
    /// The size a picture is edited at where the spec gives none. As diffusers'
    /// `VaeImageProcessor` sizes it: its own size, each side rounded down to a multiple the model
    /// takes (8, or the VAE's factor if larger). One policy more: a picture of more pixels than
    /// the model's default size is first scaled down to that many, aspect kept, since a phone's
    /// 12-megapixel photograph would ask for attention matrices no machine holds (give `height`
    /// and `width` to choose otherwise).
    func editSize(of picture: RGBImage) -> (Int, Int) {
        let multiple = max(8, model.latentScale)
        let budget = Double(model.defaults.height * model.defaults.width)
        let area = Double(picture.height * picture.width)
        let scale = area > budget ? (budget / area).squareRoot() : 1
        // A very long, thin picture stays within the largest side an edit may have.
        let longest = Double(max(picture.height, picture.width)) * scale
        let fitted = longest > Double(EditSpec.maximumImageSide) ? scale * Double(EditSpec.maximumImageSide) / longest : scale
        func side(_ value: Int) -> Int {
            let scaled = Int((Double(value) * fitted).rounded(.down))
            return max(multiple, scaled - scaled % multiple)
        }
        return (side(picture.height), side(picture.width))
    }

    /// The timesteps a picture is inverted through: the edit's own, so that its source branch can
    /// be put back on the trajectory after every step. Whole trained timesteps only (DDIM's, and
    /// DPM-Solver++'s without Karras or other fractional sigmas).
    func inversionTimesteps(_ settings: SamplingSettings) throws -> [Int] {
        let scheduler = try Sampler(model: model).scheduler(settings)
        let timesteps = scheduler.timesteps(steps: settings.steps)
        guard EditSpec.realImageSchedulers.contains(scheduler.className), timesteps.allSatisfy({ $0 == $0.rounded() && $0 >= 0 }) else {
            throw EditError(field: "scheduler", problem: "\(scheduler.className) with these options visits fractional timesteps, which a real image cannot be inverted through",
                            fix: "use ddim, or dpm++ without Karras sigmas")
        }
        // The inversion steps on the model's own training schedule: an override that changes it
        // (num_train_timesteps, the betas) would invert under one noise schedule and edit under another.
        let trained = model.ddim.schedule
        guard scheduler.schedule.alphasCumulative == trained.alphasCumulative, timesteps.allSatisfy({ Int($0) < trained.trainTimesteps }) else {
            throw EditError(field: "scheduler", problem: "overrides the model's training schedule (num_train_timesteps or the betas), which a real image is inverted under",
                            fix: "remove those overrides for real-image edits")
        }
        return timesteps.map { Int($0) }
    }

    /// The inversion trajectory of `picture` (element 0 the encoded picture, the last the start of
    /// editing), from `cache` when it holds one for the same picture, prompt and settings. A
    /// cached trajectory is the very tensors an inversion made, so the edit is bit-identical.
    func invert(_ picture: RGBImage, spec: EditSpec, settings: SamplingSettings, cache: InversionCache?) throws -> ([Tensor], EditRun.Inversion) {
        let start = Date()
        let timesteps = try inversionTimesteps(settings)
        let key = spec.imageSHA256.map { digest in
            InversionKey(model: model.identifier, picture: digest, prompt: spec.source, steps: settings.steps,
                         timesteps: timesteps, height: settings.height, width: settings.width,
                         sizeConditioning: settings.sizeConditioning, precision: settings.precision, truncatePrompts: settings.truncatePrompts)
        }
        if let cache, let key, let trajectory = cache.trajectory(for: key) {
            return (trajectory, EditRun.Inversion(cached: true, seconds: Date().timeIntervalSince(start)))
        }
        let inversion = ImageInversion(model: model)
        let sample = inversion.encode(ImageInversion.tensor(of: picture, height: settings.height, width: settings.width),
                                      precision: settings.precision)
        let trajectory = try inversion.trajectory(of: sample, prompt: spec.source, settings: settings, timesteps: timesteps)
        if let cache, let key { cache.keep(trajectory, for: key) }
        return (trajectory, EditRun.Inversion(cached: false, seconds: Date().timeIntervalSince(start)))
    }

    /// A mask picture on the latent grid [h * w]: each cell the picture's mean brightness there
    /// (box-averaged, then bilinear, as pictures are resized), 1 where it is at least half white
    /// (editable), else 0.
    func regionMask(_ mask: RGBImage, settings: SamplingSettings) -> [Float] {
        let (height, width) = (settings.height / model.latentScale, settings.width / model.latentScale)
        let resized = ImageInversion.tensor(of: mask, height: height, width: width)
        var cells = [Float](repeating: 0, count: height * width)
        resized.withUnsafeBufferPointer { values in
            for i in cells.indices {
                let brightness = (values[i] + values[height * width + i] + values[2 * height * width + i]) / 3
                cells[i] = brightness >= 0 ? 1 : 0
            }
        }
        return cells
    }

    /// A controller that edits no attention (the no-control baseline) but can put rows back on a
    /// trajectory or inside a mask; it keeps storing what `existing` stored (attention pictures).
    func plainController(prompts: Int, keeping existing: SamplingController?) -> PromptToPromptController {
        PromptToPromptController(prompts: prompts, edit: nil, crossAlpha: [], selfSteps: 0..<0, selfMaximumQueries: 0,
                                 store: (existing as? AttentionStoringController)?.store ?? AttentionStore(maximumQueries: 0))
    }
}
