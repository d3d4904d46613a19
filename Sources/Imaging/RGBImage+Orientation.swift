extension RGBImage {
    /// The picture turned by an EXIF orientation (1 to 8) to be seen upright: 2 mirrored, 3 turned
    /// half round, 4 flipped, 5 transposed, 6 turned a quarter clockwise, 7 transversed, 8 turned
    /// a quarter counter-clockwise (as Pillow's exif_transpose turns it).
    public func oriented(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let (w, h) = (width, height)
        let swapsSides = orientation >= 5
        let (outWidth, outHeight) = swapsSides ? (h, w) : (w, h)
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let (sx, sy): (Int, Int)
                switch orientation {
                case 2: (sx, sy) = (w - 1 - x, y)
                case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                case 4: (sx, sy) = (x, h - 1 - y)
                case 5: (sx, sy) = (y, x)
                case 6: (sx, sy) = (y, h - 1 - x)
                case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                default: (sx, sy) = (w - 1 - y, x)
                }
                let (to, from) = ((y * outWidth + x) * 3, (sy * w + sx) * 3)
                out[to] = pixels[from]
                out[to + 1] = pixels[from + 1]
                out[to + 2] = pixels[from + 2]
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}
