import Foundation

/// Results of samples evaluated in parallel, by index.
final class SampleResults<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private let lock = NSLock()
    private var finished = 0
    /// Called under the lock, so never from two threads at once.
    private let progress: ((Int, Int) -> Void)?

    init(count: Int, progress: ((Int, Int) -> Void)?) {
        slots = Array(repeating: nil, count: count)
        self.progress = progress
    }

    func store(_ index: Int, _ result: Result<T, Error>) {
        lock.lock()
        slots[index] = result
        finished += 1
        progress?(finished, slots.count)
        lock.unlock()
    }

    func values() throws -> [T] { try slots.map { try $0!.get() } }
}
