import Engine
import Imaging
import Wire

extension TensorPayload {
    /// An Engine tensor as Float32 wire bytes (lossless).
    init(name: String, tensor: Tensor) {
        self.init(name: name, shape: tensor.shape, floats: tensor.scalars)
    }

    /// An RGB image as [height, width, 3] bytes.
    init(name: String, image: RGBImage) {
        self.init(name: name, elementType: .uint8, shape: [image.height, image.width, 3], bytes: image.pixels)
    }

    /// The payload as an Engine tensor.
    var tensor: Tensor { Tensor(shape: shape, values: floats) }
}
