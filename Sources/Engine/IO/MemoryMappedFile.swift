import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only, private memory mapping of a whole file, unmapped when released. Weight tensors
/// borrow from it without copying.
final class MemoryMappedFile: @unchecked Sendable {
    let url: URL
    let bytes: UnsafeRawBufferPointer

    init(url: URL) throws {
        self.url = url
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else {
            throw FileReadError(url: url, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw FileReadError(url: url, reason: String(cString: strerror(errno)))
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), address != MAP_FAILED else {
            throw FileReadError(url: url, reason: "cannot map the file: " + String(cString: strerror(errno)))
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    /// Lets the kernel drop the pages that lie wholly inside `range` (bytes from the start of
    /// the file): weights converted to Float32 are not read again, and their file pages
    /// would otherwise count toward this process's resident memory until the file is closed.
    func release(_ range: Range<Int>) {
        guard let base = bytes.baseAddress, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (range.lowerBound + page - 1) / page * page
        let last = range.upperBound / page * page
        guard last > first else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + first), last - first, MADV_DONTNEED)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// A file could not be opened or read.
struct FileReadError: Error, CustomStringConvertible {
    let url: URL
    let reason: String
    var description: String { "cannot read \(url.path): \(reason)" }
}

