import EditContract
import Foundation

/// diffusers' sinusoidal timestep features: for i < half, frequency
/// exp(-ln(10000) * i / (half - shift)); [sin | cos] of t * frequency (or [cos | sin] when
/// `flipSinToCos`), zero-padded to an odd width.
func sinusoidalEmbedding(_ timesteps: [Float], width: Int, flipSinToCos: Bool, shift: Float) -> Tensor {
    let half = width / 2
    let frequencies = (0..<half).map { Foundation.exp(-Foundation.log(Float(10000)) * Float($0) / (Float(half) - shift)) }
    var values = [Float]()
    values.reserveCapacity(timesteps.count * width)
    for t in timesteps {
        let angles = frequencies.map { t * $0 }
        let sines = angles.map { Foundation.sin($0) }, cosines = angles.map { Foundation.cos($0) }
        values += flipSinToCos ? cosines + sines : sines + cosines
        if width % 2 == 1 { values.append(0) }
    }
    return Tensor(shape: [timesteps.count, width], values: values)
}

/// diffusers' guidance-scale embedding (`get_guidance_scale_embedding`, which LCM pipelines pass
/// as `timestep_cond`): [sin | cos] of 1000 w times frequencies exp(-i ln(10000) / (half - 1)),
/// computed in that order (the frequency step first), zero-padded to an odd width. [B, width].
func guidanceScaleEmbedding(_ scales: [Float], width: Int) -> Tensor {
    let half = width / 2
    let step = Foundation.log(Float(10000)) / Float(half - 1)
    let frequencies = (0..<half).map { Foundation.exp(Float($0) * -step) }
    var values = [Float]()
    values.reserveCapacity(scales.count * width)
    for w in scales {
        let angles = frequencies.map { w * 1000 * $0 }
        values += angles.map { Foundation.sin($0) } + angles.map { Foundation.cos($0) }
        if width % 2 == 1 { values.append(0) }
    }
    return Tensor(shape: [scales.count, width], values: values)
}

/// Linear -> SiLU -> Linear, mapping timestep features to the ResNet blocks' embedding; with a
/// condition projection (`cond_proj`, no bias), a condition such as the guidance-scale embedding
/// is added to the features first.
struct TimestepEmbedding: Sendable {
    let first, second: Linear
    let conditionProjection: Linear?

    init(_ weights: Weights, input: Int, width: Int, conditionWidth: Int? = nil) throws {
        first = try Linear(weights, "linear_1", input: input, output: width)
        second = try Linear(weights, "linear_2", input: width, output: width)
        conditionProjection = try conditionWidth.map { try Linear(weights, "cond_proj", input: $0, output: input, bias: false) }
    }

    /// x: [B, input]; condition: [B, conditionWidth] or nil.
    func callAsFunction(_ x: Tensor, condition: Tensor? = nil, precision: Precision) -> Tensor {
        var features = x
        if let conditionProjection, let condition { features = features + conditionProjection(condition, precision: precision) }
        return second(first(features, precision: precision).silu(), precision: precision)
    }
}
