import Coordinator
import EditContract
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A full disk under the output folder: a small tmpfs, mounted when this user may.
final class SmallDisk {
    let mountPoint: URL

    init?(kilobytes: Int) {
        mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("ptp-small-disk-\(UUID().uuidString)")
        guard getuid() == 0, (try? FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)) != nil,
              mount("tmpfs", mountPoint.path, "tmpfs", 0, "size=\(kilobytes)k") == 0 else {
            try? FileManager.default.removeItem(at: mountPoint)
            return nil
        }
    }

    deinit {
        umount(mountPoint.path)
        try? FileManager.default.removeItem(at: mountPoint)
    }

    /// Fills the disk with one file; returns it.
    func fill() -> URL {
        let filler = mountPoint.appendingPathComponent("filler")
        _ = FileManager.default.createFile(atPath: filler.path, contents: nil)
        if let handle = try? FileHandle(forWritingTo: filler) {
            let block = Data(count: 4096)
            while (try? handle.write(contentsOf: block)) != nil {}
            try? handle.close()
        }
        return filler
    }
}

@Suite("a full disk loses nothing")
struct DiskFullTests {
    @Test("outputs that cannot be written wait with their images in the state folder, and are written once space returns")
    func diskFull() throws {
        guard let disk = SmallDisk(kilobytes: 512) else {
            print("[skip] a full disk needs a tmpfs mount, which needs root: not run here")
            return
        }
        let h = try BrokerHarness(durable: true)
        let output = disk.mountPoint.appendingPathComponent("results")
        let job = try h.submit([BrokerHarness.edit("a"), BrokerHarness.edit("b")], output: output)
        let filler = disk.fill()
        h.join("w1", credit: 4)
        h.work("w1")
        // Nothing failed; both edits wait for the disk.
        let edits = try #require(h.broker.jobs[job]?.edits)
        #expect(edits.values.allSatisfy { $0.state == .finishing && $0.imagesDone == 2 }, "\(edits.values.map { ($0.id, $0.state, $0.error ?? "") })")
        h.tick(1)
        #expect(h.broker.jobs[job]?.edits["a"]?.state == .finishing)
        // Space returns: the next retry writes everything, the manifest included.
        try FileManager.default.removeItem(at: filler)
        h.tick(1)
        #expect(h.broker.jobs[job]?.edits.values.allSatisfy { $0.state == .finished } == true)
        let manifest = try String(contentsOf: output.appendingPathComponent("manifest.jsonl"), encoding: .utf8)
        #expect(manifest.split(separator: "\n").count == 2 && !manifest.contains("failed"), "\(manifest)")
        #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("b/grid.png").path))
    }
}
