import Foundation

/// The one folder a coordinator writes job outputs under (`--output-root`): a client names its
/// output folder relative to it, or by an absolute path inside it. Anything that would leave it
/// is refused with the fix: a path outside, a `..` step, a symbolic link on the way that points
/// out. So a submitter writes where the operator allowed, not wherever the coordinator's user can.
public struct OutputRoot: Sendable, Equatable {
    /// The root, absolute, with its own symbolic links resolved.
    public let path: String

    /// The root at `folder`, which must exist and be a folder.
    public init(_ folder: String) throws {
        var isDirectory: ObjCBool = false
        let absolute = URL(fileURLWithPath: folder).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SubmissionError("--output-root: \(absolute) is not a folder; make it first (mkdir -p \(absolute))")
        }
        path = Self.realPath(absolute)
    }

    /// The folder a job asked for as `requested` writes to, or the reason it may not.
    public func resolve(_ requested: String) throws -> URL {
        let fix = "give a folder under \(path) (e.g. --output run-1, which becomes \(path)/run-1)"
        guard !requested.isEmpty else { throw SubmissionError("--output: empty; \(fix)") }
        guard !requested.split(separator: "/").contains("..") else {
            throw SubmissionError("--output: '\(requested)' steps out with '..', which this coordinator refuses; \(fix)")
        }
        let absolute = requested.hasPrefix("/") ? requested : path + "/" + requested
        let folder = URL(fileURLWithPath: absolute).standardizedFileURL.path
        guard Self.isInside(folder, path) else {
            throw SubmissionError("--output: \(folder) is outside this coordinator's output root; \(fix)")
        }
        // Every part of the way that exists already, with its symbolic links followed, must stay inside.
        var existing = folder
        while !FileManager.default.fileExists(atPath: existing) && existing != path {
            existing = (existing as NSString).deletingLastPathComponent
        }
        let real = Self.realPath(existing)
        guard Self.isInside(real, path) else {
            throw SubmissionError("--output: \(existing) is a symbolic link (or under one) leading to \(real), outside this coordinator's output root; \(fix)")
        }
        return URL(fileURLWithPath: folder)
    }

    static func isInside(_ folder: String, _ root: String) -> Bool {
        folder == root || folder.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }

    /// `path` with every symbolic link resolved (realpath(3)); `path` itself when it cannot be.
    static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
