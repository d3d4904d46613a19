/// Small copies of images, for pages that list many results.
extension RGBImage {
    /// This image scaled down to fit `maximumHeight` and `maximumWidth`, keeping its aspect
    /// ratio, each output pixel the mean of the source pixels it covers (a box filter, which
    /// does not alias on the large reductions a grid's thumbnail needs). Never scales up.
    public func thumbnail(maximumWidth: Int, maximumHeight: Int) -> RGBImage {
        guard width > 0, height > 0 else { return self }
        let scale = min(1, Double(maximumWidth) / Double(width), Double(maximumHeight) / Double(height))
        guard scale < 1 else { return self }
        let outWidth = max(1, Int((Double(width) * scale).rounded()))
        let outHeight = max(1, Int((Double(height) * scale).rounded()))
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
        for y in 0..<outHeight {
            // Source rows [y0, y1) and columns [x0, x1) cover this output pixel; at least one each.
            let y0 = y * height / outHeight, y1 = max(y0 + 1, (y + 1) * height / outHeight)
            for x in 0..<outWidth {
                let x0 = x * width / outWidth, x1 = max(x0 + 1, (x + 1) * width / outWidth)
                var sum = (0, 0, 0)
                for row in y0..<y1 {
                    var index = (row * width + x0) * 3
                    for _ in x0..<x1 {
                        sum.0 += Int(pixels[index])
                        sum.1 += Int(pixels[index + 1])
                        sum.2 += Int(pixels[index + 2])
                        index += 3
                    }
                }
                let count = (y1 - y0) * (x1 - x0)
                let to = (y * outWidth + x) * 3
                out[to] = UInt8((sum.0 + count / 2) / count)
                out[to + 1] = UInt8((sum.1 + count / 2) / count)
                out[to + 2] = UInt8((sum.2 + count / 2) / count)
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}
