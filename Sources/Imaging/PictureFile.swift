import Foundation

/// Why a picture given for editing could not be used: the file, the problem and the fix.
public struct PictureError: Error, CustomStringConvertible {
    public let file: String
    public let problem: String
    public let fix: String
    public var description: String { "\(file): \(problem); \(fix)" }
}

/// The pictures users edit, whatever they are stored as: PNG (any depth, palette, grey; alpha
/// composited onto white) or JPEG (EXIF orientation applied), told apart by their first bytes
/// rather than their names.
public enum PictureFile {
    /// The largest picture file accepted (bytes): far above any photograph's, far below what
    /// would strain a coordinator that keeps pictures for its jobs.
    public static let maximumBytes = 64 << 20

    /// Reads and decodes the picture at `url`.
    public static func read(_ url: URL) throws -> RGBImage {
        try decode(try bytes(of: url), name: url.path)
    }

    /// The file's bytes, refused when missing, unreadable or over `maximumBytes`.
    public static func bytes(of url: URL) throws -> Data {
        let size: Int
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
            guard (attributes[.type] as? FileAttributeType) != .typeDirectory else {
                throw PictureError(file: url.path, problem: "is a folder", fix: "name a PNG or JPEG file")
            }
            size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        } catch let error as PictureError {
            throw error
        } catch {
            throw PictureError(file: url.path, problem: "cannot be read (\(error.localizedDescription))",
                               fix: "check the path (relative paths start at the batch or spec file's folder)")
        }
        guard size <= maximumBytes else {
            throw PictureError(file: url.path, problem: "is \(size >> 20) MB, over the \(maximumBytes >> 20) MB a picture may be",
                               fix: "downscale or recompress it (edits run at most 4096 px a side)")
        }
        do { return try Data(contentsOf: url) } catch {
            throw PictureError(file: url.path, problem: "cannot be read (\(error.localizedDescription))", fix: "check its permissions")
        }
    }

    /// Decodes PNG or JPEG bytes; `name` labels errors.
    public static func decode(_ data: Data, name: String) throws -> RGBImage {
        do {
            if JPEGCodec.isJPEG(data) { return try JPEGCodec.decode(data, name: name) }
            if PNGCodec.isPNG(data) { return try PNGCodec.decode(data, name: name) }
        } catch let error as JPEGError {
            throw PictureError(file: name, problem: error.reason, fix: "save it again as PNG or JPEG")
        } catch let error as PNGError {
            throw PictureError(file: name, problem: error.reason, fix: "save it again as PNG or JPEG")
        }
        throw PictureError(file: name, problem: "is neither a PNG nor a JPEG file (judged by its first bytes)",
                           fix: "convert it to PNG or JPEG")
    }
}
