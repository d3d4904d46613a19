import CTurboJPEG
import Foundation

/// Why a JPEG could not be read or written.
public struct JPEGError: Error, CustomStringConvertible {
    public let file: String
    public let reason: String
    public var description: String { "\(file): \(reason)" }
}

/// JPEG files through libjpeg-turbo's TurboJPEG API (whole images, errors as return values).
/// Pictures from phones and cameras are stored as the sensor saw them and carry their display
/// orientation in EXIF; reading applies it, as a viewer (and Pillow's exif_transpose) does.
public enum JPEGCodec {
    /// Reads a JPEG as 8-bit RGB in its display orientation.
    public static func read(_ url: URL) throws -> RGBImage {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw JPEGError(file: url.path, reason: "cannot read the file: \(error.localizedDescription)")
        }
        return try decode(data, name: url.path)
    }

    /// Whether bytes start as a JPEG does (an SOI marker).
    public static func isJPEG(_ data: Data) -> Bool { data.count >= 3 && data.prefix(3).elementsEqual([0xFF, 0xD8, 0xFF]) }

    /// Decodes JPEG bytes, EXIF orientation applied; `name` labels errors.
    public static func decode(_ data: Data, name: String = "JPEG data") throws -> RGBImage {
        guard isJPEG(data) else { throw JPEGError(file: name, reason: "not a JPEG file (its first bytes are not a JPEG start marker)") }
        guard let handle = tjInitDecompress() else { throw JPEGError(file: name, reason: "cannot start libjpeg-turbo's decoder") }
        defer { tjDestroy(handle) }
        var (width, height, subsampling, colorspace): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        let header = data.withUnsafeBytes { raw in
            tjDecompressHeader3(handle, raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0 else { throw JPEGError(file: name, reason: "unreadable JPEG header: \(message(handle))") }
        // Checked from the header, before anything is allocated.
        guard width > 0, height > 0, Int(width) * Int(height) <= PNGCodec.maximumPixels else {
            throw JPEGError(file: name, reason: "is \(width)x\(height) pixels, over the \(PNGCodec.maximumPixels >> 20) megapixels read here; "
                            + "downscale it first (edits run at most \(PNGCodec.maximumSideHint) px a side)")
        }
        var rgb = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
        let decoded = rgb.withUnsafeMutableBytes { out in
            data.withUnsafeBytes { raw in
                tjDecompress2(handle, raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count),
                              out.bindMemory(to: UInt8.self).baseAddress, width, 0, height, Int32(TJPF_RGB.rawValue), Int32(TJFLAG_ACCURATEDCT))
            }
        }
        // A warning (a truncated file, say) still leaves a picture; an error does not.
        guard decoded == 0 || tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) else {
            throw JPEGError(file: name, reason: "corrupt JPEG data: \(message(handle))")
        }
        let stored = RGBImage(width: Int(width), height: Int(height), pixels: rgb)
        return stored.oriented(ExifOrientation.read(from: data))
    }

    /// Encodes an RGB image as JPEG bytes at `quality` (1-100), chroma not subsampled.
    public static func encode(_ image: RGBImage, quality: Int = 95) throws -> Data {
        guard (1...100).contains(quality) else { throw JPEGError(file: "JPEG encoder", reason: "quality \(quality) is not from 1 to 100") }
        guard let handle = tjInitCompress() else { throw JPEGError(file: "JPEG encoder", reason: "cannot start libjpeg-turbo's encoder") }
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        defer { tjFree(buffer) }
        let result = image.pixels.withUnsafeBytes { pixels in
            tjCompress2(handle, pixels.bindMemory(to: UInt8.self).baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue),
                        &buffer, &size, Int32(TJSAMP_444.rawValue), Int32(quality), Int32(TJFLAG_ACCURATEDCT))
        }
        guard result == 0, let buffer else { throw JPEGError(file: "JPEG encoder", reason: message(handle)) }
        return Data(bytes: buffer, count: Int(size))
    }

    /// Writes a JPEG atomically.
    public static func write(_ image: RGBImage, to url: URL, quality: Int = 95) throws {
        try writeAtomically(try encode(image, quality: quality), to: url)
    }

    private static func message(_ handle: tjhandle) -> String {
        String(cString: tjGetErrorStr2(handle))
    }
}
