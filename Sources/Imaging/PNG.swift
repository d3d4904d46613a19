import CPNG
import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "\(pixels.count) bytes for a \(width)x\(height) RGB image")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A solid image.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        self.init(width: width, height: height,
                  pixels: (0..<(width * height)).flatMap { _ in [fill.0, fill.1, fill.2] })
    }

    /// Images side by side, top-aligned, separated by `gap` white pixels (white fills below a
    /// shorter image).
    public static func horizontalGrid(_ images: [RGBImage], gap: Int = 4) -> RGBImage {
        guard !images.isEmpty else { return RGBImage(width: 0, height: 0, pixels: []) }
        let width = images.reduce(0) { $0 + $1.width } + gap * (images.count - 1)
        var grid = RGBImage(width: width, height: images.map(\.height).max() ?? 0, fill: (255, 255, 255))
        var x0 = 0
        for image in images {
            grid.paste(image, x: x0, y: 0)
            x0 += image.width + gap
        }
        return grid
    }

    /// Copies `image` with its top-left corner at (x, y), clipped to this image.
    public mutating func paste(_ image: RGBImage, x: Int, y: Int) {
        for row in 0..<image.height where y + row >= 0 && y + row < height {
            for column in 0..<image.width where x + column >= 0 && x + column < width {
                let from = (row * image.width + column) * 3, to = ((y + row) * width + x + column) * 3
                pixels[to] = image.pixels[from]
                pixels[to + 1] = image.pixels[from + 1]
                pixels[to + 2] = image.pixels[from + 2]
            }
        }
    }
}

/// Why a PNG could not be read or written.
public struct PNGError: Error, CustomStringConvertible {
    public let file: String
    public let reason: String
    public var description: String { "\(file): \(reason)" }
}

/// PNG files through libpng's simplified API, which reports errors as return values (so no
/// longjmp crosses Swift frames).
public enum PNGCodec {
    private static let formatColor: UInt32 = 0x02
    private static let formatAlpha: UInt32 = 0x01

    /// The most pixels a PNG read here may have (32 Mi: 8192x4096), bounding its memory.
    public static let maximumPixels = 1 << 25
    static let maximumSideHint = 4096

    /// Reads any PNG (gray, RGB, RGBA, palette; 8 or 16 bits) as 8-bit RGB, compositing any
    /// transparency onto white. 16-bit files follow libpng's colour handling: without a gAMA
    /// chunk their samples are taken as linear light and encoded to sRGB.
    public static func read(_ url: URL) throws -> RGBImage {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PNGError(file: url.path, reason: "cannot read the file: \(error.localizedDescription)")
        }
        return try decode(data, name: url.path)
    }

    /// Whether bytes start with the PNG signature.
    public static func isPNG(_ data: Data) -> Bool {
        data.count >= 8 && data.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    }

    /// Decodes PNG bytes; `name` labels errors.
    public static func decode(_ data: Data, name: String = "PNG data") throws -> RGBImage {
        guard isPNG(data) else {
            throw PNGError(file: name, reason: "not a PNG file (its first bytes are not the PNG signature)")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw PNGError(file: name, reason: "unreadable PNG: \(message(of: &image))") }
        defer { png_image_free(&image) }
        let (width, height) = (Int(image.width), Int(image.height))
        // Checked from the header, before anything is allocated: a few hundred kilobytes of
        // PNG may state gigapixels.
        guard width > 0, height > 0, width * height <= maximumPixels else {
            throw PNGError(file: name, reason: "is \(width)x\(height) pixels, over the \(maximumPixels >> 20) megapixels read here; "
                           + "downscale it first (edits run at most \(maximumSideHint) px a side)")
        }
        image.format = formatColor | formatAlpha
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        let finished = rgba.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        guard finished != 0 else { throw PNGError(file: name, reason: "corrupt PNG data: \(message(of: &image))") }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            let alpha = Int(rgba[i * 4 + 3])
            for c in 0..<3 {
                rgb[i * 3 + c] = UInt8((Int(rgba[i * 4 + c]) * alpha + 255 * (255 - alpha) + 127) / 255)
            }
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }

    /// Encodes an RGB image as PNG bytes.
    public static func encode(_ rgb: RGBImage) throws -> Data {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(rgb.width)
        image.height = UInt32(rgb.height)
        image.format = formatColor
        var size = 0
        // First call measures, second writes.
        let measured = rgb.pixels.withUnsafeBytes {
            png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, 0, nil)
        }
        guard measured != 0 else { throw PNGError(file: "PNG encoder", reason: message(of: &image)) }
        var data = Data(count: size)
        let written = data.withUnsafeMutableBytes { out in
            rgb.pixels.withUnsafeBytes { png_image_write_to_memory(&image, out.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
        }
        guard written != 0 else { throw PNGError(file: "PNG encoder", reason: message(of: &image)) }
        return data.prefix(size)
    }

    /// Writes an RGB PNG atomically.
    public static func write(_ image: RGBImage, to url: URL) throws {
        try writeAtomically(try encode(image), to: url)
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
