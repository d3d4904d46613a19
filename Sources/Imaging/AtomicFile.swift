import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why an output could not be written, naming the path and the fix (not a system error's dump).
public struct OutputFileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public let fix: String

    public init(path: String, problem: String, fix: String) {
        (self.path, self.problem, self.fix) = (path, problem, fix)
    }

    public var description: String { "\(path): \(problem); \(fix)" }

    /// Whether trying again later may succeed (the disk was full, or out of inodes or quota).
    public var isTransient: Bool { problem.contains(Self.spaceProblem) }

    static let spaceProblem = "no space left"

    /// The failure of a system call on `path`, from `errno`.
    static func system(_ what: String, _ path: String, code: Int32 = errno) -> OutputFileError {
        switch code {
        case ENOSPC, EDQUOT:
            return OutputFileError(path: path, problem: "\(what): \(spaceProblem) on the device", fix: "free space there and try again")
        case EACCES, EPERM, EROFS:
            return OutputFileError(path: path, problem: "\(what): " + String(cString: strerror(code)), fix: "choose a folder this user can write to")
        default:
            return OutputFileError(path: path, problem: "\(what): " + String(cString: strerror(code)), fix: "check the path and the disk")
        }
    }
}

/// What is at `path` now, without following a final symbolic link.
private func fileKind(_ path: String) -> mode_t? {
    var status = stat()
    guard lstat(path, &status) == 0 else { return nil }
    return status.st_mode & S_IFMT
}

private func kindName(_ kind: mode_t) -> String {
    switch kind {
    case S_IFLNK: return "a symbolic link"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFIFO: return "a FIFO"
    case S_IFSOCK: return "a socket"
    case S_IFDIR: return "a folder"
    default: return "not a regular file"
    }
}

/// Makes `directory` (and its parents) if needed. Something other than a folder (or a link to
/// one) in its place is refused, never replaced.
public func prepareOutputFolder(_ directory: URL) throws {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: directory.path, isDirectory: &isFolder) {
        guard isFolder.boolValue else {
            throw OutputFileError(path: directory.path, problem: "is \(fileKind(directory.path).map(kindName) ?? "not a folder"), not a folder",
                                  fix: "name a folder for the outputs (a new one is made)")
        }
        return
    }
    do {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
        // The deepest existing ancestor says why (not a folder, not writable, disk full).
        var ancestor = directory.deletingLastPathComponent()
        while ancestor.path != "/" && !FileManager.default.fileExists(atPath: ancestor.path) { ancestor = ancestor.deletingLastPathComponent() }
        if FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw OutputFileError(path: ancestor.path, problem: "is \(fileKind(ancestor.path).map(kindName) ?? "not a folder"), not a folder",
                                  fix: "name a folder for the outputs")
        }
        let code = (error as NSError).userInfo[NSUnderlyingErrorKey].flatMap { ($0 as? NSError)?.code }.map(Int32.init) ?? EIO
        throw OutputFileError.system("cannot make the folder", directory.path, code: code)
    }
}

/// Writes `data` to `url` atomically and durably: a temporary file in the same folder, flushed
/// to disk, renamed into place, then the folder flushed. A reader never sees a half-written
/// file, a crash leaves the old file intact, and after a power loss the new name does not point
/// at data that never reached the disk (the coordinator's journal records outputs as written).
/// Only a regular file is ever replaced: a device, FIFO, socket, folder or symbolic link at
/// `url` is refused.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    try prepareOutputFolder(directory)
    if let kind = fileKind(url.path), kind != S_IFREG {
        throw OutputFileError(path: url.path, problem: "is \(kindName(kind)), which ptp does not replace",
                              fix: "name a new file or a regular one")
    }
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    do {
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw OutputFileError.system("cannot create a file", temporary.path) }
        var written = 0
        var failure: Int32 = 0
        let complete = data.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let result = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return false
                }
                written += result
            }
            return true
        }
        let synced = complete && fsync(descriptor) == 0
        if complete && !synced { failure = errno }
        close(descriptor)
        guard synced else { throw OutputFileError.system("cannot write", url.path, code: failure) }
        guard rename(temporary.path, url.path) == 0 else { throw OutputFileError.system("cannot rename into place", url.path) }
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

/// Appends `data` to the file at `url` (made if missing) after cutting it to `length` bytes
/// (what its writer last recorded as complete: an append a crash cut short is dropped, not
/// doubled), durably; returns the new length. For append-only records too large to rewrite.
public func appendDurably(_ data: Data, to url: URL, after length: Int) throws -> Int {
    try prepareOutputFolder(url.deletingLastPathComponent())
    if let kind = fileKind(url.path), kind != S_IFREG {
        throw OutputFileError(path: url.path, problem: "is \(kindName(kind)), which ptp does not replace", fix: "move it away")
    }
    let descriptor = open(url.path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
    guard descriptor >= 0 else { throw OutputFileError.system("cannot open", url.path) }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { throw OutputFileError.system("cannot read the size of", url.path) }
    // Shorter than recorded: someone cut it; carry on from its end.
    let start = min(Int(status.st_size), length)
    guard ftruncate(descriptor, off_t(start)) == 0, lseek(descriptor, off_t(start), SEEK_SET) >= 0 else {
        throw OutputFileError.system("cannot cut back", url.path)
    }
    var written = 0
    var failure: Int32 = 0
    let complete = data.withUnsafeBytes { buffer -> Bool in
        guard let base = buffer.baseAddress else { return true }
        while written < buffer.count {
            let result = write(descriptor, base + written, buffer.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                failure = errno
                return false
            }
            written += result
        }
        return true
    }
    guard complete else { throw OutputFileError.system("cannot append to", url.path, code: failure) }
    guard fsync(descriptor) == 0 else { throw OutputFileError.system("cannot write", url.path) }
    return start + written
}
