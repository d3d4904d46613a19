import Engine
import Foundation
import Imaging

/// Images compared by the command-line tests, as values in [0, 1] in H, W, C order.
enum ReferenceImage {
    /// A [1, 3, H, W] tensor in [-1, 1] from a safetensors file.
    static func load(_ url: URL, tensor name: String) throws -> [Double] {
        let image = RGBImage(tensor: try SafeTensorsFile(url: url).tensor(name))
        return image.pixels.map { Double($0) / 255 }
    }

    static func png(_ url: URL) throws -> [Double] {
        try PNGCodec.read(url).pixels.map { Double($0) / 255 }
    }
}
