import Imaging
import Engine
import Foundation
import Testing

@Suite("PNG through libpng")
struct PNGTests {
    @Test("RGB round trip, and tensor conversion as diffusers does")
    func roundTrip() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = SplitMix64(seed: 1)
        let image = RGBImage(width: 13, height: 7, pixels: (0..<(13 * 7 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let url = directory.appendingPathComponent("x.png")
        try PNGCodec.write(image, to: url)
        #expect(try PNGCodec.read(url) == image)
        #expect(RGBImage(tensor: image.tensor()) == image)
        // Values outside [-1, 1] clamp; 0 maps to 127.5, rounded to even (128).
        let t = Tensor(shape: [3, 1, 1], values: [-3, 0, 3])
        #expect(RGBImage(tensor: t).pixels == [0, 128, 255])
    }

    @Test("gray, gray+alpha, RGBA, palette and 16-bit files read as 8-bit RGB")
    func colourTypes() throws {
        // colour type, bit depth, one row of two pixels of raw samples
        let gray = try PNGCodec.decode(TinyPNG.make(width: 2, height: 1, colourType: 0, bitDepth: 8, rows: [[10, 200]]))
        #expect(gray.pixels == [10, 10, 10, 200, 200, 200])
        let rgba = try PNGCodec.decode(TinyPNG.make(width: 2, height: 1, colourType: 6, bitDepth: 8, rows: [[255, 0, 0, 255, 0, 0, 255, 0]]))
        #expect(rgba.pixels == [255, 0, 0, 255, 255, 255])  // the transparent pixel becomes white
        let grayAlpha = try PNGCodec.decode(TinyPNG.make(width: 1, height: 1, colourType: 4, bitDepth: 8, rows: [[0, 255]]))
        #expect(grayAlpha.pixels == [0, 0, 0])
        let deep = try PNGCodec.decode(TinyPNG.make(width: 1, height: 1, colourType: 2, bitDepth: 16, rows: [[0xFF, 0xFF, 0x80, 0x00, 0, 0]]))
        // libpng's simplified API takes 16-bit samples without a gAMA chunk as linear light and
        // encodes them to sRGB: half intensity becomes 186.
        #expect(deep.pixels == [255, 186, 0])
        let palette = try PNGCodec.decode(TinyPNG.make(width: 2, height: 1, colourType: 3, bitDepth: 8, rows: [[1, 0]],
                                                       palette: [9, 8, 7, 1, 2, 3]))
        #expect(palette.pixels == [1, 2, 3, 9, 8, 7])
    }

    @Test("non-PNG and truncated files give clear errors")
    func badFiles() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = directory.appendingPathComponent("notes.png")
        try Data("hello, not an image".utf8).write(to: text)
        let notPNG = #expect(throws: PNGError.self) { try PNGCodec.read(text) }
        #expect(notPNG?.description.contains("not a PNG") == true && notPNG?.description.contains("notes.png") == true)

        let good = try PNGCodec.encode(RGBImage(width: 40, height: 40, fill: (1, 2, 3)))
        let truncated = directory.appendingPathComponent("cut.png")
        try good.prefix(good.count / 2).write(to: truncated)
        let cut = #expect(throws: PNGError.self) { try PNGCodec.read(truncated) }
        #expect(cut?.description.contains("cut.png") == true)

        #expect(throws: PNGError.self) { try PNGCodec.read(directory.appendingPathComponent("missing.png")) }
    }

    @Test("a PNG stating more pixels than the bound is refused from its header, before any allocation")
    func oversized() throws {
        // One row of data for a 16000x16000 header: libpng reads the header, the bound stops it.
        let huge = TinyPNG.make(width: 16000, height: 16000, colourType: 2, bitDepth: 8, rows: [[UInt8](repeating: 0, count: 48)])
        let error = #expect(throws: PNGError.self) { try PNGCodec.decode(huge, name: "huge.png") }
        #expect(error?.description.contains("16000x16000") == true && error?.description.contains("downscale") == true, "\(String(describing: error))")
        // At the bound's edge, a real image still reads.
        let wide = RGBImage(width: 8192, height: 4, fill: (9, 8, 7))
        #expect(try PNGCodec.decode(try PNGCodec.encode(wide)) == wide)
    }
}

/// Builds small PNGs of any colour type with stored (uncompressed) deflate blocks, to feed the
/// decoder files this project never writes.
enum TinyPNG {
    static func make(width: Int, height: Int, colourType: UInt8, bitDepth: UInt8, rows: [[UInt8]], palette: [UInt8]? = nil) -> Data {
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var header = Data()
        header.append(contentsOf: bigEndian(UInt32(width)) + bigEndian(UInt32(height)))
        header.append(contentsOf: [bitDepth, colourType, 0, 0, 0])
        png.append(chunk("IHDR", header))
        if let palette { png.append(chunk("PLTE", Data(palette))) }
        let raw: [UInt8] = rows.flatMap { row -> [UInt8] in [0] + row }  // filter type 0 per row
        var zlib = Data([0x78, 0x01, 0x01])  // header, then one final stored block
        let length = UInt16(raw.count)
        zlib.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8(~length >> 8)])
        zlib.append(contentsOf: raw)
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
        zlib.append(contentsOf: bigEndian(b << 16 | a))
        png.append(chunk("IDAT", zlib))
        png.append(chunk("IEND", Data()))
        return png
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }

    static func chunk(_ type: String, _ body: Data) -> Data {
        let typed = Data(type.utf8) + body
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in typed {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return Data(bigEndian(UInt32(body.count))) + typed + Data(bigEndian(~crc))
    }
}
