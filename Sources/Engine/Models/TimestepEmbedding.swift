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

/// Linear -> SiLU -> Linear, mapping timestep features to the ResNet blocks' embedding.
struct TimestepEmbedding: Sendable {
    let first, second: Linear

    init(_ weights: Weights, input: Int, width: Int) throws {
        first = try Linear(weights, "linear_1", input: input, output: width)
        second = try Linear(weights, "linear_2", input: width, output: width)
    }

    func callAsFunction(_ x: Tensor, precision: Precision) -> Tensor {
        second(first(x, precision: precision).silu(), precision: precision)
    }
}
