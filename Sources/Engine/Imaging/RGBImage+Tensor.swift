import Imaging

extension RGBImage {
    /// An image from a [3, H, W] (or [1, 3, H, W]) tensor in [-1, 1], converted as diffusers
    /// does: clamp((x + 1) / 2, 0, 1) * 255, rounded. A NaN becomes 0 rather than trapping.
    public init(tensor: Tensor) {
        let shape = tensor.rank == 4 ? Array(tensor.shape.dropFirst()) : tensor.shape
        precondition(shape.count == 3 && shape[0] == 3 && (tensor.rank == 3 || tensor.shape[0] == 1),
                     "an RGB image needs a [3, H, W] tensor, got \(tensor.shape)")
        let (h, w) = (shape[1], shape[2])
        var pixels = [UInt8](repeating: 0, count: h * w * 3)
        tensor.withUnsafeBufferPointer { values in
            for c in 0..<3 {
                for i in 0..<(h * w) {
                    let value = values[c * h * w + i]
                    let unit = value.isNaN ? 0 : min(max(value / 2 + 0.5, 0), 1)
                    pixels[i * 3 + c] = UInt8((unit * 255).rounded(.toNearestOrEven))
                }
            }
        }
        self.init(width: w, height: h, pixels: pixels)
    }

    /// The image as a [3, H, W] tensor in [-1, 1].
    public func tensor() -> Tensor {
        var result = Tensor(uninitializedShape: [3, height, width])
        result.withUnsafeMutableBufferPointer { values in
            for c in 0..<3 {
                for i in 0..<(width * height) {
                    values[c * width * height + i] = Float(pixels[i * 3 + c]) / 127.5 - 1
                }
            }
        }
        return result
    }
}
