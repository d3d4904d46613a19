import Foundation

/// Numbers sessions across connections.
final class SessionCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int {
        lock.withLock {
            value += 1
            return value
        }
    }
}
