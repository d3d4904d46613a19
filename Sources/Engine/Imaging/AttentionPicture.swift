import Imaging
/// Prompt-to-Prompt's per-token cross-attention picture: one map per token (start and end
/// included), each scaled by its own maximum and enlarged, with the token's text under it.
public enum AttentionPicture {
    /// Renders the maps of one prompt side by side, `cell` pixels wide each (their height
    /// follows the grid's aspect ratio).
    public static func render(_ attention: TokenAttention, cell: Int = 96) -> RGBImage {
        let scale = 2, labelHeight = PixelFont.glyphHeight * scale + 8, gap = 4
        let (rows, columns) = (attention.grid.height, attention.grid.width)
        let cellHeight = max(1, cell * rows / max(columns, 1))
        let count = attention.tokens.count
        var picture = RGBImage(width: count * cell + (count + 1) * gap, height: cellHeight + labelHeight + 2 * gap, fill: (255, 255, 255))
        for (index, map) in attention.maps.enumerated() {
            let peak = map.max() ?? 0
            let x0 = gap + index * (cell + gap)
            for y in 0..<cellHeight {
                for x in 0..<cell {
                    let sy = y * rows / cellHeight, sx = x * columns / cell
                    let value = peak > 0 ? max(0, map[sy * columns + sx]) / peak : 0
                    let level = UInt8((value * 255).rounded())
                    let i = ((gap + y) * picture.width + x0 + x) * 3
                    picture.pixels[i] = level
                    picture.pixels[i + 1] = level
                    picture.pixels[i + 2] = level
                }
            }
            // Long tokens use the font at half size, and are cut only if still too wide.
            var label = attention.tokens[index]
            let labelScale = PixelFont.width(of: label, scale: scale) > cell ? 1 : scale
            while PixelFont.width(of: label, scale: labelScale) > cell && !label.isEmpty { label.removeLast() }
            let labelX = x0 + (cell - PixelFont.width(of: label, scale: labelScale)) / 2
            PixelFont.draw(label, into: &picture, x: labelX, y: gap + cellHeight + 6, scale: labelScale, color: (0, 0, 0))
        }
        return picture
    }
}
