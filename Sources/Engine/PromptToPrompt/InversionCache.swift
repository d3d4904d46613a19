import EditContract
import Synchronization

/// Inversions of real pictures kept for the edits that follow: a catalogue edits each picture
/// several ways, and every edit of one picture with one source prompt inverts it to the same
/// trajectory. Keyed by everything the trajectory depends on (`InversionKey`), least recently
/// used first out beyond a size bound. Shared by a worker's tasks, so it locks.
public final class InversionCache: Sendable {
    /// The bound on what the trajectories hold, in bytes.
    public let capacity: Int
    private let state: Mutex<State>

    private struct State: ~Copyable {
        var entries: [InversionKey: [Tensor]] = [:]
        /// Least recently used first.
        var order: [InversionKey] = []
        var bytes = 0
    }

    public init(capacityBytes: Int) {
        capacity = max(0, capacityBytes)
        state = Mutex(State())
    }

    /// The trajectory kept for `key`, now the most recently used; nil if none.
    func trajectory(for key: InversionKey) -> [Tensor]? {
        state.withLock { state in
            guard let path = state.entries[key] else { return nil }
            state.order.removeAll { $0 == key }
            state.order.append(key)
            return path
        }
    }

    /// Keeps a trajectory, dropping the least recently used ones beyond the bound (one larger
    /// than the bound is not kept).
    func keep(_ trajectory: [Tensor], for key: InversionKey) {
        let size = Self.bytes(of: trajectory)
        guard size <= capacity else { return }
        state.withLock { state in
            if let old = state.entries.removeValue(forKey: key) {
                state.bytes -= Self.bytes(of: old)
                state.order.removeAll { $0 == key }
            }
            while state.bytes + size > capacity, !state.order.isEmpty {
                let oldest = state.order.removeFirst()
                if let dropped = state.entries.removeValue(forKey: oldest) {
                    state.bytes -= Self.bytes(of: dropped)
                }
            }
            state.entries[key] = trajectory
            state.order.append(key)
            state.bytes += size
        }
    }

    static func bytes(of trajectory: [Tensor]) -> Int {
        trajectory.reduce(0) { $0 + $1.count * MemoryLayout<Float>.stride }
    }

    /// How many inversions and bytes are kept.
    public var usage: (entries: Int, bytes: Int) {
        state.withLock { ($0.entries.count, $0.bytes) }
    }
}

/// What an inversion's trajectory depends on: the model, the picture (by its file's SHA-256),
/// the prompt it is inverted with, the steps and the scheduler's timesteps, the size it is
/// edited at (and SDXL's size conditioning), the precision and how long prompts are handled. Guidance and the negative prompt
/// do not enter DDIM inversion (it runs the conditional branch only), and `direct` and `ddim`
/// share one trajectory, so none of them splits the cache.
struct InversionKey: Hashable, Sendable {
    let model: String
    let picture: String
    let prompt: String
    let steps: Int
    let timesteps: [Int]
    let height: Int
    let width: Int
    let sizeConditioning: SizeConditioning
    let precision: Precision
    let truncatePrompts: Bool
}
