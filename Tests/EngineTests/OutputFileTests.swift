import Foundation
import Imaging
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Outputs replace only regular files; everything else at their path is refused with the path
/// and the fix, and stays as it was.
@Suite("output files: special files refused, errors that name the path")
struct OutputFileTests {
    func kind(_ path: String) -> mode_t {
        var status = stat()
        _ = lstat(path, &status)
        return status.st_mode & S_IFMT
    }

    @Test("a FIFO, a symbolic link or a folder where an output goes is refused and left in place")
    func specialFiles() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let image = RGBImage(width: 2, height: 2, fill: (1, 2, 3))

        let fifo = root.appendingPathComponent("fifo.png")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        let fifoError = #expect(throws: OutputFileError.self) { try PNGCodec.write(image, to: fifo) }
        #expect(fifoError?.problem.contains("FIFO") == true && kind(fifo.path) == S_IFIFO)

        let target = root.appendingPathComponent("precious.txt")
        try Data("keep".utf8).write(to: target)
        let link = root.appendingPathComponent("link.png")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
        let linkError = #expect(throws: OutputFileError.self) { try PNGCodec.write(image, to: link) }
        #expect(linkError?.problem.contains("symbolic link") == true && kind(link.path) == S_IFLNK)
        #expect(try String(contentsOf: target, encoding: .utf8) == "keep")

        let folder = root.appendingPathComponent("folder.png")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        #expect(throws: OutputFileError.self) { try PNGCodec.write(image, to: folder) }

        // An output folder that is a FIFO, or under a regular file.
        let fifoFolder = root.appendingPathComponent("out-fifo")
        #expect(mkfifo(fifoFolder.path, 0o600) == 0)
        let folderError = #expect(throws: OutputFileError.self) { try EditOutputs.write([image], to: fifoFolder) }
        #expect(folderError?.description.contains("not a folder") == true, "\(String(describing: folderError))")
        #expect(kind(fifoFolder.path) == S_IFIFO)
        #expect(throws: OutputFileError.self) { try EditOutputs.write([image], to: target.appendingPathComponent("below")) }

        // A regular file is replaced as before.
        let regular = root.appendingPathComponent("regular.png")
        try Data("old".utf8).write(to: regular)
        try PNGCodec.write(image, to: regular)
        #expect(try PNGCodec.read(regular) == image)
    }
}
