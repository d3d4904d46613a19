import Foundation

/// The one folder a coordinator writes job outputs under (`--output-root`): a client names its
/// output folder relative to it, or by an absolute path inside it. Anything that would leave it
/// is refused with the fix: a path outside, a `..` step, a symbolic link on the way that points
/// out (or nowhere yet). So a submitter writes where the operator allowed, not wherever the
/// coordinator's user can. (Someone who may write inside the root itself could still swap a
/// folder for a link after the check: the root's owners are trusted.)
public struct OutputRoot: Sendable, Equatable {
    /// The root, absolute, with its own symbolic links resolved.
    public let path: String
    /// The root as the operator gave it, absolute (it may pass through links).
    let given: String
    /// The longest folder a job may write to (what the protocol carries back to the client).
    static let maximumPathBytes = 4096

    /// The root at `folder`, which must exist and be a folder.
    public init(_ folder: String) throws {
        var isDirectory: ObjCBool = false
        let absolute = URL(fileURLWithPath: folder).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SubmissionError("--output-root: \(absolute) is not a folder; make it first (mkdir -p \(absolute))")
        }
        (given, path) = (absolute, Self.realPath(absolute) ?? absolute)
    }

    /// The folder a job asked for as `requested` writes to, with the links on its way resolved,
    /// or the reason it may not.
    public func resolve(_ requested: String) throws -> URL {
        let fix = "give a folder under \(path) (e.g. --output run-1, which becomes \(path)/run-1)"
        guard !requested.isEmpty else { throw SubmissionError("--output: empty; \(fix)") }
        guard !requested.split(separator: "/").contains("..") else {
            throw SubmissionError("--output: '\(requested)' steps out with '..', which this coordinator refuses; \(fix)")
        }
        let folder = URL(fileURLWithPath: requested.hasPrefix("/") ? requested : path + "/" + requested).standardizedFileURL.path
        // Inside the root as given or as resolved; the rest of the way is walked below.
        guard let rest = Self.remainder(of: folder, under: given) ?? Self.remainder(of: folder, under: path) else {
            throw SubmissionError("--output: \(folder) is outside this coordinator's output root; \(fix)")
        }
        // Down from the root one part at a time: a symbolic link must lead to a folder inside it,
        // a link to nothing (whose target the coordinator would create) is refused too.
        var (current, shown) = (path, path)
        var parts = rest.split(separator: "/").map(String.init)[...]
        while let part = parts.first {
            let next = current + "/" + part
            var info = stat()
            guard lstat(next, &info) == 0 else { break }
            parts.removeFirst()
            shown += "/" + part
            guard info.st_mode & S_IFMT == S_IFLNK else {
                current = next
                continue
            }
            guard let target = Self.realPath(next) else {
                throw SubmissionError("--output: \(shown) is a symbolic link to nothing yet, which this coordinator will not follow; \(fix)")
            }
            guard Self.remainder(of: target, under: path) != nil else {
                throw SubmissionError("--output: \(shown) is a symbolic link leading to \(target), outside this coordinator's output root; \(fix)")
            }
            current = target
        }
        let resolved = ([current] + parts).joined(separator: "/")
        guard resolved.utf8.count <= Self.maximumPathBytes else {
            throw SubmissionError("--output: the folder's path is \(resolved.utf8.count) bytes, over \(Self.maximumPathBytes); give a shorter one")
        }
        return URL(fileURLWithPath: resolved)
    }

    /// `folder` below `root` ("" for the root itself), or nil when it is not inside.
    static func remainder(of folder: String, under root: String) -> String? {
        if folder == root { return "" }
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return folder.hasPrefix(prefix) ? String(folder.dropFirst(prefix.count)) : nil
    }

    /// `path` with every symbolic link resolved (realpath(3)); nil when it does not resolve.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
