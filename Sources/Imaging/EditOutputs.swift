import Foundation

/// The files of one edit's results, named and laid out the same whether `ptp edit` wrote them
/// on one machine or the coordinator did for a cluster job: `source.png`, `target-1.png`...,
/// and `grid.png` (all side by side, source first).
public enum EditOutputs {
    /// File names for `count` images, source first.
    public static func imageNames(count: Int) -> [String] {
        (0..<count).map { $0 == 0 ? "source.png" : "target-\($0).png" }
    }

    public static let gridName = "grid.png"

    /// Writes every image and the grid into `directory` (created if needed), each file
    /// atomically. Returns the files written.
    @discardableResult
    public static func write(_ images: [RGBImage], to directory: URL) throws -> [URL] {
        try prepareOutputFolder(directory)
        var written: [URL] = []
        for (name, image) in zip(imageNames(count: images.count), images) {
            let url = directory.appendingPathComponent(name)
            try PNGCodec.write(image, to: url)
            written.append(url)
        }
        let grid = directory.appendingPathComponent(gridName)
        try PNGCodec.write(RGBImage.horizontalGrid(images), to: grid)
        written.append(grid)
        return written
    }
}
