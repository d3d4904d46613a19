import Foundation
import Imaging

/// Small PNGs of finished edits' grids for the status page, made once each (a result's files
/// do not change after it is written) and kept for the latest results only.
final class ThumbnailCache: @unchecked Sendable {
    static let maximumWidth = 480
    static let maximumHeight = 120
    private let capacity: Int
    private let lock = NSLock()
    /// Least recently used first.
    private var entries: [(key: String, png: Data)] = []

    init(capacity: Int = 64) { self.capacity = capacity }

    /// The thumbnail of the grid at `grid`, made from the file on a miss (call off the event loop).
    func thumbnail(key: String, grid: URL) throws -> Data {
        if let hit = lookUp(key) { return hit }
        let image = try PNGCodec.read(grid).thumbnail(maximumWidth: Self.maximumWidth, maximumHeight: Self.maximumHeight)
        let png = try PNGCodec.encode(image)
        store(key, png)
        return png
    }

    private func lookUp(_ key: String) -> Data? {
        lock.lock()
        defer { lock.unlock() }
        guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
        let entry = entries.remove(at: index)
        entries.append(entry)
        return entry.png
    }

    private func store(_ key: String, _ png: Data) {
        lock.lock()
        defer { lock.unlock() }
        entries.removeAll { $0.key == key }
        entries.append((key, png))
        if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
    }
}
