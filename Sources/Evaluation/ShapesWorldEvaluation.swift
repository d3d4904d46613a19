import Dispatch
import EditContract
import Engine
import Foundation
import Imaging

/// The shapes world's scores of a model (`ptp eval`): generation fidelity, super-resolution
/// quality, and Prompt-to-Prompt against the no-control baseline for each kind of edit.
public struct ShapesWorldEvaluation: Sendable {
    public let model: DiffusionModel
    public var samples: Int
    public var seed: UInt64
    public var steps: Int?
    /// Classifier-free guidance of stage 1 (default: the model's).
    public var guidance: Double?

    /// The added pattern word's cross-attention weight in the reweight row.
    public var reweightWeight: Double
    /// The arithmetic of every model call.
    public var precision: Precision = .fp32

    public init(model: DiffusionModel, samples: Int, seed: UInt64 = 1, steps: Int? = nil, guidance: Double? = nil, reweightWeight: Double = 4) {
        (self.model, self.samples, self.seed, self.steps, self.guidance) = (model, samples, seed, steps, guidance)
        self.reweightWeight = reweightWeight
    }

    var side: Int { model.defaults.height }

    /// Evaluates samples side by side, one per thread, each single-threaded: the small
    /// shapes-world UNets spend more on waking threads than on work when one image is split
    /// across cores. Results keep their sample order, so scores do not depend on timing.
    func eachSample<T: Sendable>(_ count: Int, progress: ((Int, Int) -> Void)?, _ body: @Sendable (Int) throws -> T) throws -> [T] {
        let threads = ComputeThreads.count
        ComputeThreads.setThreadCount(1)
        defer { ComputeThreads.setThreadCount(threads) }
        let results = SampleResults<T>(count: count, progress: progress)
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            var index = worker
            while index < count {
                results.store(index, Result { try body(index) })
                index += threads
            }
        }
        return try results.values()
    }

    public static func psnr(_ a: RGBImage, _ b: RGBImage) -> Double {
        var sum = 0.0
        for (x, y) in zip(a.pixels, b.pixels) { let d = Double(x) - Double(y); sum += d * d }
        let mse = sum / Double(a.pixels.count)
        return mse == 0 ? 99 : 10 * log10(255 * 255 / mse)
    }
}
