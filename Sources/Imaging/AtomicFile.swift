import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes `data` to `url` atomically and durably: a temporary file in the same folder, flushed
/// to disk, renamed into place, then the folder flushed. A reader never sees a half-written
/// file, a crash leaves the old file intact, and after a power loss the new name does not point
/// at data that never reached the disk (the coordinator's journal records outputs as written).
public func writeAtomically(_ data: Data, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    func failure(_ what: String, _ path: String) -> CocoaError {
        CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "\(what): " + String(cString: strerror(errno))])
    }
    do {
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure("cannot create", temporary.path) }
        var written = 0
        let complete = data.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let result = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if result < 0 { if errno == EINTR { continue }; return false }
                written += result
            }
            return true
        }
        let synced = complete && fsync(descriptor) == 0
        close(descriptor)
        guard synced else { throw failure("cannot write", temporary.path) }
        guard rename(temporary.path, url.path) == 0 else { throw failure("cannot rename into place", url.path) }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw error
    }
    // The rename itself is durable once the folder is.
    let folder = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if folder >= 0 {
        _ = fsync(folder)
        close(folder)
    }
}
