import Foundation

/// The EXIF orientation of a JPEG (tag 0x0112 of its APP1 "Exif" segment's first image
/// directory), 1 to 8: how the stored pixels must be turned to be seen upright. Anything
/// missing or malformed counts as 1 (upright), as viewers take it.
enum ExifOrientation {
    static func read(from data: Data) -> Int {
        let bytes = [UInt8](data.prefix(1 << 16))
        var offset = 2  // past SOI
        // Markers up to the first scan; APP1 comes early.
        while offset + 4 <= bytes.count, bytes[offset] == 0xFF {
            let marker = bytes[offset + 1]
            if marker == 0xDA || marker == 0xD9 { break }
            let length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard length >= 2, offset + 2 + length <= bytes.count else { break }
            let segment = Array(bytes[(offset + 4)..<(offset + 2 + length)])
            if marker == 0xE1, segment.count > 14, segment.starts(with: Array("Exif\0\0".utf8)) {
                return orientation(inTIFF: Array(segment.dropFirst(6))) ?? 1
            }
            offset += 2 + length
        }
        return 1
    }

    /// The orientation entry of a TIFF header's first image directory.
    static func orientation(inTIFF tiff: [UInt8]) -> Int? {
        guard tiff.count >= 8 else { return nil }
        let little: Bool
        switch (tiff[0], tiff[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func integer(_ at: Int, _ size: Int) -> Int? {
            guard at >= 0, at + size <= tiff.count else { return nil }
            let bytes = tiff[at..<(at + size)]
            return (little ? Array(bytes.reversed()) : Array(bytes)).reduce(0) { $0 << 8 | Int($1) }
        }
        guard integer(2, 2) == 42, let directory = integer(4, 4), let entries = integer(directory, 2) else { return nil }
        for index in 0..<min(entries, 512) {
            let entry = directory + 2 + index * 12
            guard let tag = integer(entry, 2) else { return nil }
            // SHORT, count 1: the value sits in the entry's first two value bytes.
            if tag == 0x0112, integer(entry + 2, 2) == 3, let value = integer(entry + 8, 2), (1...8).contains(value) { return value }
        }
        return nil
    }
}
