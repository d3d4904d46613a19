import Foundation
import Imaging
import Testing

/// JPEG through libjpeg-turbo: pictures in every EXIF orientation shown upright as Pillow shows
/// them (reference/make_fixtures.py jpeg), round trips, and bad files refused with the reason.
@Suite("JPEG files")
struct JPEGTests {
    @Test("every EXIF orientation (1-8) is read upright, as Pillow's exif_transpose shows it", arguments: 1...8)
    func orientations(_ orientation: Int) throws {
        let folder = Fixtures.url("jpeg")
        let ours = try JPEGCodec.read(folder.appendingPathComponent("orientation-\(orientation).jpg"))
        let pillow = try PNGCodec.read(folder.appendingPathComponent("orientation-\(orientation)-upright.png"))
        #expect(ours.width == pillow.width && ours.height == pillow.height && ours.width == 40 && ours.height == 24,
                "\(ours.width)x\(ours.height) against Pillow's \(pillow.width)x\(pillow.height)")
        var difference = 0
        for (a, b) in zip(ours.pixels, pillow.pixels) { difference = max(difference, abs(Int(a) - Int(b))) }
        #expect(difference <= 2, "orientation \(orientation): \(difference) levels from Pillow's")
    }

    @Test("encode and decode round-trip within JPEG's loss; not a JPEG, a corrupt one and a gigapixel header are refused by name")
    func roundTripAndRefusals() throws {
        var generator = SplitMix(seed: 5)
        var values: [UInt8] = []
        for i in 0..<(33 * 17 * 3) {
            let noise = Int(generator.next() % 16)
            values.append(UInt8((i * 7 + noise) % 256))
        }
        let image = RGBImage(width: 33, height: 17, pixels: values)
        let data = try JPEGCodec.encode(image, quality: 100)
        let back = try JPEGCodec.decode(data)
        var total = 0
        for (a, b) in zip(back.pixels, image.pixels) { total += abs(Int(a) - Int(b)) }
        let error = total / image.pixels.count
        #expect(back.width == 33 && back.height == 17 && error <= 4, "mean error \(error)")
        let pngData = try PNGCodec.encode(image)
        #expect(JPEGCodec.isJPEG(data) && !JPEGCodec.isJPEG(pngData))

        let png = #expect(throws: JPEGError.self) { try JPEGCodec.decode(pngData, name: "photo.jpg") }
        #expect(png?.description.contains("photo.jpg: not a JPEG file") == true)
        let corrupt = #expect(throws: JPEGError.self) { try JPEGCodec.decode(Data(data.prefix(40)), name: "cut.jpg") }
        #expect(corrupt?.file == "cut.jpg")
        // A header that states 60000x60000 pixels is refused before anything is allocated for it.
        var huge = [UInt8](data)
        let frame: Int? = (0..<(huge.count - 9)).first { i in huge[i] == 0xFF && (huge[i + 1] == 0xC0 || huge[i + 1] == 0xC2) }
        if let sof = frame {
            let side: [UInt8] = [0xEA, 0x60, 0xEA, 0x60]
            for index in 0..<4 { huge[sof + 5 + index] = side[index] }
        }
        let gigapixel = #expect(throws: JPEGError.self) { try JPEGCodec.decode(Data(huge), name: "huge.jpg") }
        #expect(gigapixel?.reason.contains("60000x60000") == true, "\(String(describing: gigapixel))")
        // Quality outside 1-100.
        #expect(throws: JPEGError.self) { try JPEGCodec.encode(image, quality: 0) }
    }

    @Test("orientation turns a picture as its name says: 6 a quarter clockwise, 8 counter-clockwise, 5 and 7 across the diagonals")
    func turning() {
        // 3 x 2: a b c / d e f, one value per pixel in the red channel.
        let picture = RGBImage(width: 3, height: 2, pixels: [1, 2, 3, 4, 5, 6].flatMap { [UInt8($0), 0, 0] })
        func reds(_ image: RGBImage) -> [UInt8] { stride(from: 0, to: image.pixels.count, by: 3).map { image.pixels[$0] } }
        #expect(reds(picture.oriented(1)) == [1, 2, 3, 4, 5, 6])
        #expect(reds(picture.oriented(2)) == [3, 2, 1, 6, 5, 4])
        #expect(reds(picture.oriented(3)) == [6, 5, 4, 3, 2, 1])
        #expect(reds(picture.oriented(4)) == [4, 5, 6, 1, 2, 3])
        #expect(reds(picture.oriented(5)) == [1, 4, 2, 5, 3, 6] && picture.oriented(5).width == 2)
        #expect(reds(picture.oriented(6)) == [4, 1, 5, 2, 6, 3])
        #expect(reds(picture.oriented(7)) == [6, 3, 5, 2, 4, 1])
        #expect(reds(picture.oriented(8)) == [3, 6, 2, 5, 1, 4])
    }
}

/// A small deterministic generator for test pictures.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
